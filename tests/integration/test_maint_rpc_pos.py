"""pos ``link`` and ``test_link`` (the maintenance page's POS/ERP view) from the real service process,
against a real SQLite POS written by the simulator."""
from __future__ import annotations

import threading
import time

import pytest

from endcap.core import messages as m
from endcap.core.bus import RpcClient
from endcap.launcher import wait_health
from endcap.pos.store import EdgeStore
from endcap.sim import writer
from endcap.sim.dataset import load_store
from endcap.sim.replay import Simulator
from endcap.sim.sourcedb import open_source


@pytest.fixture
def store_db(tmp_path):
    url = f"sqlite:///{tmp_path}/ospos.db"
    sim = Simulator(open_source(url), load_store(367, max_lines=300), seed=7)
    sim.prepare()
    sim.run()
    return url, sim


def _config(url: str) -> str:
    return (f'[pos]\nstore_id = "s367"\npoll_interval_s = 0.2\nbackoff_base_s = 0.1\nbackoff_cap_s = 0.3\n'
            f'health_interval_s = 0.3\nstock_count_max_age_s = 1e9\n[pos.sql]\nurl = "{url}"\n')


def _until(fn, check, timeout_s: float = 20.0):
    deadline, pause = time.monotonic() + timeout_s, threading.Event()
    while True:
        got = fn()
        if check(got):
            return got
        assert time.monotonic() < deadline, f"condition not met within {timeout_s} s; last: {got}"
        pause.wait(0.1)


def test_link_reports_poll_lag_quarantine_and_the_probe_reads_the_source(gateway, store_db):
    url, sim = store_db
    src = open_source(url)
    now_us = sim.source_now_us + 1_000_000
    writer.insert_sale(src, 900001, now_us, now_us, None, [(1, 999_999_999, 1, 1.0)])  # unknown SKU: quarantined
    src.commit()
    gateway.write_config(_config(url))
    gateway.start("pos")
    wait_health(gateway.paths, "pos", lambda h: h.ok and h.counters.get("quarantined") == 1)
    with RpcClient(gateway.paths.rpc_address("pos"), "test", timeout_ms=8000) as rpc:
        t0 = time.time()
        link = rpc.call("link", m.Empty(), m.PosLink)
        t1 = time.time()
        newest = EdgeStore(gateway.paths.service_state("pos") / "pos.db", readonly=True).newest_source_us()
        assert newest is not None and newest >= now_us
        assert link.adapter == f"sql: {url}" and link.quarantined == 1 and link.last_error is None
        assert link.last_poll_ok_at is not None and t0 - 5 < link.last_poll_ok_at <= t1
        assert t0 - newest / 1e6 - 0.01 <= link.lag_s <= t1 - newest / 1e6 + 0.01

        probe = rpc.call("test_link", m.Empty(), m.PosLinkTest)
        assert probe.ok and "read the sales table" in probe.detail and 0 < probe.latency_ms < 3000

        # the sales table vanishes: the probe says so at once, the link shows the poller's current error
        src.execute("ALTER TABLE ospos_sales RENAME TO ospos_sales_moved")
        src.commit()
        probe = rpc.call("test_link", m.Empty(), m.PosLinkTest)
        assert not probe.ok and "sales table ospos_sales is missing" in probe.detail, probe.detail
        down = _until(lambda: rpc.call("link", m.Empty(), m.PosLink), lambda lk: lk.last_error is not None)
        assert down.last_error.code == "schema_drift" and "ospos_sales" in down.last_error.message
        assert down.last_poll_ok_at >= link.last_poll_ok_at  # the last success is kept, not cleared

        src.execute("ALTER TABLE ospos_sales_moved RENAME TO ospos_sales")
        src.commit()
        back = _until(lambda: rpc.call("link", m.Empty(), m.PosLink), lambda lk: lk.last_error is None)
        assert back.last_poll_ok_at > link.last_poll_ok_at
        assert rpc.call("test_link", m.Empty(), m.PosLinkTest).ok
    src.close()


def test_probe_names_a_missing_source_file(gateway, store_db, tmp_path):
    url, _sim = store_db
    gateway.write_config(_config(url))
    gateway.start("pos")
    wait_health(gateway.paths, "pos", lambda h: h.ok)
    db = tmp_path / "ospos.db"
    for suffix in ("", "-wal", "-shm"):
        p = db.with_name(db.name + suffix)
        if p.exists():
            p.rename(p.with_name(p.name + ".gone"))
    with RpcClient(gateway.paths.rpc_address("pos"), "test", timeout_ms=8000) as rpc:
        probe = rpc.call("test_link", m.Empty(), m.PosLinkTest)
    assert not probe.ok and f"the source database file {db} does not exist" in probe.detail


def test_probe_of_a_rest_source_makes_one_request_and_never_shows_the_token(store_db, monkeypatch):
    from endcap.pos import link
    from endcap.pos.config import PosConfig, RestSource
    from endcap.sim import rest_api

    url, _sim = store_db
    app = rest_api.create_app(url, token="tok-Very-Secret-1")
    try:
        base = rest_api.serve(app)
        cfg = PosConfig(adapter="rest", rest=RestSource(base_url=base, location_id="1", token_env="ENDCAP_A2_TOKEN"))
        monkeypatch.setenv("ENDCAP_A2_TOKEN", "tok-Very-Secret-1")
        good = link.probe(cfg)
        assert good.ok and "HTTP 200" in good.detail and base in good.detail and good.latency_ms > 0
        monkeypatch.setenv("ENDCAP_A2_TOKEN", "tok-Wrong-Secret-2")
        bad = link.probe(cfg)
        assert not bad.ok and "refused the token (HTTP 401)" in bad.detail and "Secret" not in bad.detail
        monkeypatch.delenv("ENDCAP_A2_TOKEN")
        unset = link.probe(cfg)
        assert not unset.ok and "ENDCAP_A2_TOKEN is not set" in unset.detail
    finally:
        rest_api.shutdown(app)

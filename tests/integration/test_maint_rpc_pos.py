"""pos ``link`` and ``test_link`` (the maintenance page's POS/ERP view) from the real service process,
against a real SQLite POS written by the simulator."""
from __future__ import annotations

import threading
import time

import pytest

from endcap.core import messages as m
from endcap.core.bus import RpcClient
from endcap.core.errors import RemoteError
from endcap.launcher import wait_health
from endcap.pos.store import EdgeStore
from endcap.sim import writer
from endcap.sim.dataset import load_store
from endcap.sim.replay import Simulator
from endcap.sim.sourcedb import open_source
from tests.fixtures.waiting import until


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
        down = until(lambda: rpc.call("link", m.Empty(), m.PosLink), lambda lk: lk.last_error is not None)
        assert down.last_error.code == "schema_drift" and "ospos_sales" in down.last_error.message
        assert down.last_poll_ok_at >= link.last_poll_ok_at  # the last success is kept, not cleared

        src.execute("ALTER TABLE ospos_sales_moved RENAME TO ospos_sales")
        src.commit()
        back = until(lambda: rpc.call("link", m.Empty(), m.PosLink), lambda lk: lk.last_error is None)
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


def test_a_slow_link_probe_never_holds_up_the_stock_path(gateway, tmp_path, monkeypatch):
    """The REST source answers the probe's request only after the probe's own budget (for real, over HTTP):
    ``stock`` keeps answering fast meanwhile, a second probe is refused as busy, and the first one
    reports the timeout in plain words."""
    from endcap.sim import rest_api, sourcedb
    from endcap.sim.dataset import Item

    url = f"sqlite:///{tmp_path}/small.db"
    src = sourcedb.open_source(url)
    src.create_schema()
    writer.insert_items(src, [Item(1, "Milk", "Dairy", 1.25), Item(2, "Bread", "Bakery", 2.5)])
    writer.insert_counts(src, [(1, 10), (2, 20)], int(time.time() * 1e6))
    src.commit()
    src.close()
    app = rest_api.create_app(url, token="tok-slow-1")
    probe_seen, release = threading.Event(), threading.Event()
    inner = app.wsgi_app

    def slow_probe(environ, start_response):  # only the probe's request (types=CATEGORY) is held back
        if environ.get("PATH_INFO") == "/v2/catalog/list" and environ.get("QUERY_STRING") == "types=CATEGORY":
            probe_seen.set()
            release.wait(15)
        return inner(environ, start_response)

    app.wsgi_app = slow_probe
    try:
        base = rest_api.serve(app)
        monkeypatch.setenv("ENDCAP_SLOW_TOKEN", "tok-slow-1")
        gateway.write_config('[pos]\nadapter = "rest"\nstore_id = "s367"\npoll_interval_s = 0.2\nbackoff_base_s = 0.1\n'
                             'backoff_cap_s = 0.3\nhealth_interval_s = 0.3\nstock_count_max_age_s = 1e9\n'
                             f'[pos.rest]\nbase_url = "{base}"\nlocation_id = "1"\ntoken_env = "ENDCAP_SLOW_TOKEN"\n'
                             'timeout_s = 5.0\n')
        gateway.start("pos")
        sku = "2"
        with RpcClient(gateway.paths.rpc_address("pos"), "test", timeout_ms=5000) as rpc:
            want = until(lambda: rpc.call("stock", m.StockQuery([sku]), m.StockReply).levels[0].qty, lambda q: q == 20.0)
            answers: list = []
            with RpcClient(gateway.paths.rpc_address("pos"), "maint", timeout_ms=10_000) as maint:
                t_probe = time.perf_counter()
                prober = threading.Thread(target=lambda: answers.append(maint.call("test_link", m.Empty(), m.PosLinkTest)))
                prober.start()
                try:
                    assert probe_seen.wait(5), "the probe never reached the source"
                    worst = 0.0
                    for _ in range(10):
                        t0 = time.perf_counter()
                        levels = rpc.call("stock", m.StockQuery([sku]), m.StockReply).levels
                        worst = max(worst, time.perf_counter() - t0)
                        assert levels[0].sku == sku and levels[0].qty == want
                    assert worst < 0.3, f"stock took {worst:.3f} s while the probe was running"
                    assert prober.is_alive()  # the probe was still running all along
                    with RpcClient(gateway.paths.rpc_address("pos"), "maint2", timeout_ms=5000) as other:
                        with pytest.raises(RemoteError) as e:
                            other.call("test_link", m.Empty(), m.PosLinkTest)
                    assert e.value.code == "busy"
                finally:
                    prober.join(10)
                    release.set()
            assert len(answers) == 1, answers
            probe = answers[0]
            assert not probe.ok and "no answer within 3 s" in probe.detail and "tok-slow-1" not in probe.detail, probe.detail
            assert 2.5 < time.perf_counter() - t_probe < 6.0
        assert gateway.procs["pos"].proc.poll() is None  # still running
    finally:
        release.set()
        rest_api.shutdown(app)

"""The pos service as a real process against a real SQLite POS database: queries, bad input, outages.

Each test replays a few real baskets with the simulator, then does what a careless or hostile POS
would do, and checks what the service says (health on the bus, quarantine, RPC replies, exit codes).
"""
from __future__ import annotations

import subprocess
import sys
import threading
import time

import pytest

from endcap.core import messages as m
from endcap.core.bus import RpcClient
from endcap.core.errors import RemoteError
from endcap.pos.store import EdgeStore
from endcap.sim import writer
from endcap.sim.dataset import load_store
from endcap.sim.replay import Simulator
from endcap.sim.sourcedb import open_source
from endcap.launcher import wait_health


@pytest.fixture
def store_db(tmp_path):
    """A POS database holding ~500 replayed lines of store 367, and the simulator that wrote it."""
    url = f"sqlite:///{tmp_path}/ospos.db"
    sim = Simulator(open_source(url), load_store(367, max_lines=500), seed=5)
    sim.prepare()
    sim.run()
    return url, sim


def _config(url: str, extra: str = "") -> str:
    return (f'[pos]\nstore_id = "s367"\npoll_interval_s = 0.2\nbackoff_base_s = 0.1\nbackoff_cap_s = 0.5\n'
            f'health_interval_s = 0.3\nstock_count_max_age_s = 1e9\n{extra}[pos.sql]\nurl = "{url}"\n')


def _rpc(gateway):
    return RpcClient(gateway.paths.rpc_address("pos"), "test", timeout_ms=5000)


def test_serves_stock_and_baskets_and_fails_closed_on_unknown_sku(gateway, store_db):
    url, sim = store_db
    gateway.write_config(_config(url))
    gateway.start("pos")
    wait_health(gateway.paths, "pos", lambda h: h.ok and h.counters.get("txns", 0) > 0)
    want = sim.expected_stock()
    sku = sorted(want)[0]
    with _rpc(gateway) as rpc:
        levels = rpc.call("stock", m.StockQuery([sku, "no-such-sku"]), m.StockReply).levels
        assert levels[0].qty == want[sku]
        assert levels[1].qty is None  # never counted: unknown, never zero or a guess
        shopper = next(str(b.customer_id) for b in sim.data.baskets if b.customer_id is not None)
        baskets = rpc.call("baskets", m.BasketQuery(shopper, 5), m.BasketsReply).baskets
        assert baskets and all(b.shopper_id == shopper and b.status == "completed" for b in baskets)
        item = sim.data.items[0]
        got = rpc.call("catalogue", m.CatalogQuery([item.category]), m.CatalogReply).items
        assert got and all(i.category == item.category for i in got) and str(item.item_id) in {i.sku for i in got}
        assert len(rpc.call("catalogue", m.CatalogQuery([], limit=3), m.CatalogReply).items) == 3


def test_hostile_rows_are_quarantined_with_reasons_and_counted(gateway, store_db):
    url, sim = store_db
    src = open_source(url)
    now = sim.source_now_us + 1_000_000
    item = sim.data.items[0].item_id
    writer.insert_sale(src, 900001, now, now, None, [(1, 999_999_999, 1, 1.0)])  # unknown SKU
    writer.insert_sale(src, 900002, now, now + 1, None, [(1, item, 0, 1.0)])  # zero quantity
    writer.insert_sale(src, 900003, now, now + 2, None, [(1, item, 1, 1.0)], status=7)  # unknown status
    src.execute("INSERT INTO ospos_sales (sale_id, sale_time, sale_status, sale_type, updated_at) VALUES (900004, ?, 0, 0, ?)",
                (src.to_db(now), src.to_db(now + 3)))  # a sale with no items
    writer.insert_sale(src, 900005, now, now + 4, None, [(1, item, 1, 1.0)])
    src.execute("UPDATE ospos_sales_items SET quantity_purchased = 'lots' WHERE sale_id = 900005")  # drifted type
    writer.insert_sale(src, 900006, now, now + 5, 42, [(1, item, 2, 1.5)])  # a good one after them
    src.commit()
    gateway.write_config(_config(url))
    gateway.start("pos")
    health = wait_health(gateway.paths, "pos", lambda h: h.ok and h.counters.get("quarantined") == 5)
    assert health.ok
    edge = EdgeStore(gateway.paths.service_state("pos") / "pos.db", readonly=True)
    reasons = {key: reason for _, key, reason in edge.quarantined()}
    assert reasons == {
        "900001": "unknown SKU(s) 999999999",
        "900002": "line 1: quantity_purchased is 0",
        "900003": "sale_status 7 is not 0, 1 or 2",
        "900004": "sale has no items",
        "900005": "line 1: quantity_purchased is not a number: 'lots'",
    }
    assert edge.current_txns()["900006"] == ("completed", ((1, str(item), 2.0, 1.5),))


def test_schema_drift_is_a_loud_fatal_error_and_recovers_when_fixed(gateway, store_db):
    url, sim = store_db
    gateway.write_config(_config(url))
    proc = gateway.start("pos")
    wait_health(gateway.paths, "pos", lambda h: h.ok)
    src = open_source(url)
    src.execute("ALTER TABLE ospos_sales_items RENAME COLUMN item_unit_price TO unit_price_v2")
    src.commit()
    now = sim.source_now_us + 10_000_000
    src.execute("INSERT INTO ospos_sales (sale_id, sale_time, sale_status, sale_type, updated_at) VALUES (800001, ?, 0, 0, ?)",
                (src.to_db(now), src.to_db(now)))
    src.execute("INSERT INTO ospos_sales_items (sale_id, item_id, line, quantity_purchased, unit_price_v2) VALUES (800001, ?, 1, 1, 2.5)",
                (sim.data.items[0].item_id,))
    src.commit()
    bad = wait_health(gateway.paths, "pos", lambda h: not h.ok and h.last_error is not None)
    assert bad.last_error.code == "schema_drift" and "item_unit_price" in bad.last_error.message
    assert proc.alive()
    src.execute("ALTER TABLE ospos_sales_items RENAME COLUMN unit_price_v2 TO item_unit_price")
    src.commit()
    good = wait_health(gateway.paths, "pos", lambda h: h.ok and h.counters.get("txns", 0) >= len(sim.data.baskets) + 1)
    assert good.ok


def test_unreachable_pos_backs_off_reports_and_keeps_serving(gateway, store_db, tmp_path):
    url, sim = store_db
    gateway.write_config(_config(url, extra="stock_feed_ttl_s = 1.0\n"))
    proc = gateway.start("pos")
    wait_health(gateway.paths, "pos", lambda h: h.ok)
    db = tmp_path / "ospos.db"
    for suffix in ("", "-wal", "-shm"):  # the POS server goes away
        p = db.with_name(db.name + suffix)
        if p.exists():
            p.rename(p.with_name(p.name + ".gone"))
    gateway.procs["pos"].kill()  # and the service restarts while it is away
    proc = gateway.start("pos")
    down = wait_health(gateway.paths, "pos", lambda h: not h.ok and h.counters.get("poll_errors", 0) >= 3)
    assert down.last_error.code == "unreachable" and "failing" in down.status
    assert proc.alive()
    sku = sorted(sim.expected_stock())[0]
    with _rpc(gateway) as rpc:  # still answers, and once the feed is older than its TTL, stock is unknown
        deadline, pause = time.monotonic() + 10, threading.Event()
        while (qty := rpc.call("stock", m.StockQuery([sku]), m.StockReply).levels[0].qty) is not None:
            assert time.monotonic() < deadline, f"stock still {qty} long after the feed TTL"
            pause.wait(0.1)
    for suffix in ("", "-wal", "-shm"):
        p = db.with_name(db.name + suffix + ".gone")
        if p.exists():
            p.rename(db.with_name(db.name + suffix))
    wait_health(gateway.paths, "pos", lambda h: h.ok)
    with _rpc(gateway) as rpc:
        assert rpc.call("stock", m.StockQuery([sku]), m.StockReply).levels[0].qty == sim.expected_stock()[sku]


def test_catalogue_is_not_ready_until_pos_has_read_it_once(gateway, store_db, tmp_path):
    """A fresh edge store answers "not read yet", never an empty catalogue that looks like an empty store."""
    url, sim = store_db
    db = tmp_path / "ospos.db"
    away = [(p, p.with_name(p.name + ".away")) for p in (db.with_name(db.name + s) for s in ("", "-wal", "-shm")) if p.exists()]
    for here, there in away:  # the POS server is not there when pos first starts
        here.rename(there)
    gateway.write_config(_config(url))
    gateway.start("pos")
    wait_health(gateway.paths, "pos", lambda h: h.counters.get("poll_errors", 0) >= 1)
    item = sim.data.items[0]
    with _rpc(gateway) as rpc:
        with pytest.raises(RemoteError) as err:
            rpc.call("catalogue", m.CatalogQuery([item.category]), m.CatalogReply)
        assert err.value.code == "not_ready" and "not read the POS catalogue yet" in str(err.value)
        for here, there in away:
            there.rename(here)
        wait_health(gateway.paths, "pos", lambda h: h.ok)
        got = rpc.call("catalogue", m.CatalogQuery([item.category]), m.CatalogReply).items
        assert str(item.item_id) in {i.sku for i in got}


@pytest.mark.parametrize("config,expected", [
    ('[pos]\ncolour = "red"\n[pos.sql]\nurl = "sqlite:///x.db"\n', "pos.colour: unknown key"),
    ('[pos]\npoll_interval_s = "soon"\n[pos.sql]\nurl = "sqlite:///x.db"\n', "pos.poll_interval_s: Expected `float`, got `str`"),
    ('[core]\n', "section [pos] is missing"),
    ('[pos.sql]\nurl = "mysql://db/ospos"\n', "pos.sql.url: unsupported scheme 'mysql'"),
])
def test_bad_config_exits_78_naming_the_key(gateway, config, expected):
    gateway.write_config(config)
    res = subprocess.run([sys.executable, "-m", "endcap.cli", "service", "pos", "--root", str(gateway.root)],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 78  # EX_CONFIG: the unit's RestartPreventExitStatus stops a restart loop
    assert expected in res.stderr


def test_service_pings_the_systemd_watchdog_and_stops_on_sigterm(gateway, store_db):
    import os

    from endcap.launcher import ServiceProcess

    url, _ = store_db
    gateway.write_config(_config(url))
    env = dict(os.environ, WATCHDOG_USEC="200000")  # systemd's WatchdogSec=0.2s: pings every 0.1 s
    proc = ServiceProcess.endcap("pos", "service", "pos", "--root", str(gateway.root), env=env,
                                 log_path=gateway.logs / "pos.log").start()
    gateway.procs["pos-watchdog"] = proc
    proc.wait_ready(30)
    assert proc.notify.wait_for("WATCHDOG=1", 5, proc.alive, count=5)  # keeps pinging while it works
    assert proc.stop() == 0  # SIGTERM: clean exit 0, STOPPING=1 sent

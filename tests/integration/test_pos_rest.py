"""The REST adapter against the simulator's Square-style facade, over real HTTP on loopback (no mocks).

The facade serves an OSPOS-shaped SQLite source written with the simulator's own writer (hand-made rows)
or by a short replay with faults; what the adapter reads is compared with the source itself
(``sim.truth``).
"""
from __future__ import annotations

import socket
import sqlite3
import threading
import time
from collections import defaultdict

import pytest
from flask import Flask

from endcap.core.errors import ConfigError, UpstreamFatal, UpstreamRetryable
from endcap.core.health import HealthState
from endcap.pos.adapters import square
from endcap.pos.adapters.api import Cursor, Txn
from endcap.pos.adapters.rest import RestAdapter
from endcap.pos.config import PosConfig, RestSource
from endcap.pos.poller import PosPoller
from endcap.pos.store import EdgeStore
from endcap.sim import rest_api, sourcedb, truth, writer
from endcap.sim.dataset import Basket, Item, Line, StoreData
from endcap.sim.replay import Simulator

TOKEN = "test-token-not-secret"
T0 = 1_600_000_000_000_000  # 2020-09-13 12:26:40 UTC
S = 1_000_000
ITEMS = [Item(1, "Milk", "Dairy", 1.25), Item(2, "Bread", "Bakery", 2.5), Item(3, "Eggs", "Dairy", 3.1)]


@pytest.fixture
def source_url(tmp_path):
    url = f"sqlite:///{tmp_path}/pos.db"
    src = sourcedb.open_source(url)
    src.create_schema()
    writer.insert_items(src, ITEMS)
    writer.insert_counts(src, [(1, 10), (2, 20), (3, 30)], T0)
    src.commit()
    yield url
    src.close()


@pytest.fixture
def serve():
    apps: list[Flask] = []

    def start(url: str, **kw) -> str:
        app = rest_api.create_app(url, **{"token": TOKEN, **kw})
        apps.append(app)
        return rest_api.serve(app)

    yield start
    for app in apps:
        rest_api.shutdown(app)


def adapter(base: str, token: str = TOKEN, **kw) -> RestAdapter:
    return RestAdapter("pos", "s1", base, "1", token, timeout_s=5.0, **kw)


def write(url: str, fn) -> None:
    src = sourcedb.open_source(url)
    try:
        fn(src)
        src.commit()
    finally:
        src.close()


def read_all(a: RestAdapter, stream: str, limit: int, start: Cursor = Cursor()) -> list:
    """Poll until the source has nothing more, checking the cursor only moves forward."""
    out, cursor = [], start
    for _ in range(1000):
        page = a.poll(stream, cursor, limit)
        assert not page.quarantined, page.quarantined
        out += page.events
        nxt = page.next_cursor
        assert nxt.ts_us > cursor.ts_us or (nxt.ts_us == cursor.ts_us and (
            nxt.pk == cursor.pk or cursor.pk == "" or square.pk_key(nxt.pk) > square.pk_key(cursor.pk))), (cursor, nxt)
        cursor = page.next_cursor
        if not page.more:
            return out
    raise AssertionError("never reached the end")


def sales(src, rows):
    for sale_id, updated_us, lines, kw in rows:
        writer.insert_sale(src, sale_id, updated_us, updated_us, kw.pop("customer", 7), lines, **kw)


# --- paging ---------------------------------------------------------------------------------------------

def test_pages_through_every_order_exactly_once_even_with_tied_change_times(source_url, serve):
    # 5 orders share one updated_at; server pages of 2 must not lose or repeat any of them
    rows = [(i, T0 + (i if i < 4 or i > 8 else 4) * S, [(1, 1, 1, 1.25)], {}) for i in range(1, 13)]
    write(source_url, lambda src: sales(src, rows))
    a = adapter(serve(source_url, page_limit=2))
    for limit in (1, 2, 3, 50):
        got = read_all(a, "sales", limit)
        assert sorted(int(t.txn_id) for t in got) == list(range(1, 13)), limit
        assert [(t.change_us, int(t.txn_id)) for t in got] == sorted((t.change_us, int(t.txn_id)) for t in got)
    # a sweep restarting from the tie's microsecond ("" = all of it) sees the whole tie again
    again = read_all(a, "sales", 2, Cursor(T0 + 4 * S, ""))
    assert {int(t.txn_id) for t in again} == set(range(4, 13))
    # a new order written after the reads arrives from the last cursor, alone
    last = Cursor(T0 + 12 * S, "12")
    write(source_url, lambda src: sales(src, [(13, T0 + 13 * S, [(1, 2, 1, 2.5)], {})]))
    assert [t.txn_id for t in read_all(a, "sales", 5, last)] == ["13"]


def test_maps_completed_suspended_cancelled_and_returns(source_url, serve):
    write(source_url, lambda src: sales(src, [
        (1, T0 + 1 * S, [(1, 1, 2, 1.25), (2, 2, 1, 2.5)], {"customer": 42}),
        (2, T0 + 2 * S, [(1, 3, 1, 3.1)], {"status": 1, "customer": None}),
        (3, T0 + 3 * S, [(1, 2, 3, 2.5)], {"status": 2}),
        (1_000_000_001, T0 + 4 * S, [(1, 1, -1, 1.25)], {"sale_type": 4, "customer": 42}),
    ]))
    got = {t.txn_id: t for t in read_all(adapter(serve(source_url)), "sales", 10)}
    view = {k: (t.status, t.shopper_id, [(ln.line, ln.sku, ln.qty, ln.price, ln.type) for ln in t.lines]) for k, t in got.items()}
    assert view == {
        "1": ("completed", "42", [(1, "1", 2.0, 1.25, "sale"), (2, "2", 1.0, 2.5, "sale")]),
        "2": ("suspended", None, [(1, "3", 1.0, 3.1, "sale")]),
        "3": ("cancelled", "7", [(1, "2", 3.0, 2.5, "void")]),
        "1000000001": ("completed", "42", [(1, "1", -1.0, 1.25, "return")]),
    }
    assert got["2"].source_version == str(T0 + 2 * S) and got["1"].business_ts == (T0 + S) / 1e6
    # the suspended sale completes: it comes back as a new version of the same transaction
    write(source_url, lambda src: writer.set_sale_status(src, 2, 0, T0 + 9 * S))
    page = adapter(serve(source_url)).poll("sales", Cursor(T0 + 4 * S, "1000000001"), 10)
    assert [(t.txn_id, t.status, t.source_version) for t in page.events] == [("2", "completed", str(T0 + 9 * S))]


def test_stock_facts_and_catalogue(source_url, serve):
    write(source_url, lambda src: (
        writer.insert_movements(src, [(1, -2, "POS 1"), (2, 24, "restock")], T0 + 5 * S),
        writer.update_counts(src, [(3, 28)], T0 + 6 * S),
    ))
    a = adapter(serve(source_url, page_limit=2))
    for limit in (1, 2, 10):
        facts = read_all(a, "stock", limit)
        latest = {(f.kind, f.fact_id): (f.sku, f.qty, f.ts_us) for f in facts}
        assert sorted(latest.values()) == sorted([
            ("1", 10.0, T0), ("2", 20.0, T0), ("3", 28.0, T0 + 6 * S), ("1", -2.0, T0 + 5 * S), ("2", 24.0, T0 + 5 * S)])
        assert {k for k, _ in latest} == {"count", "delta"}
    assert [(i.sku, i.name, i.category, i.price) for i in a.catalogue()] == [
        ("1", "Milk", "Dairy", 1.25), ("2", "Bread", "Bakery", 2.5), ("3", "Eggs", "Dairy", 3.1)]


def test_malformed_order_is_quarantined_and_the_rest_flows(source_url, serve):
    write(source_url, lambda src: sales(src, [(i, T0 + i * S, [(1, 1, 1, 1.25)], {}) for i in (1, 2, 3)]))
    with sqlite3.connect(source_url[len("sqlite://"):]) as db:  # what a buggy till writes: text in a number column
        db.execute("UPDATE ospos_sales_items SET quantity_purchased = 'two' WHERE sale_id = 2")
    page = adapter(serve(source_url)).poll("sales", Cursor(), 10)
    assert [t.txn_id for t in page.events] == ["1", "3"]
    [q] = page.quarantined
    assert (q.stream, q.source_key) == ("sales", "2")
    assert "line_items[0].quantity is not a number: 'two'" in q.reason and "two" in q.raw
    assert page.next_cursor == Cursor(T0 + 3 * S, "3")


def test_facade_over_postgresql(postgres_url, serve):
    src = sourcedb.open_source(postgres_url)
    try:
        src.create_schema()
        writer.insert_items(src, ITEMS)
        writer.insert_counts(src, [(1, 10)], T0)
        sales(src, [(i, T0 + (i // 2) * S, [(1, 1, 1.5, 1.25), (2, 3, 2, 3.1)], {}) for i in range(1, 8)])
        writer.insert_movements(src, [(1, -1.5, "POS 1")], T0 + S)
        src.commit()
        a = adapter(serve(postgres_url, page_limit=2))
        got = read_all(a, "sales", 2)
        assert sorted(int(t.txn_id) for t in got) == list(range(1, 8))
        assert [(ln.qty, ln.price) for ln in got[0].lines] == [(1.5, 1.25), (2.0, 3.1)]
        facts = {(f.kind, f.fact_id): f.qty for f in read_all(a, "stock", 1)}  # re-reads are idempotent by id
        assert sorted((k, q) for (k, _), q in facts.items()) == [("count", 10.0), ("delta", -1.5)]
        assert a.day_totals("2020-09-13") == truth.source_day_totals(src, "2020-09-13")
    finally:
        src.close()


# --- whole store: a replay with faults, read through REST, equals the source ---------------------------

def _dataset(n: int = 60) -> StoreData:
    baskets = tuple(
        Basket(basket_id=100 + i, customer_id=900 + i % 7, business_us=T0 + i * 45 * S,
               lines=tuple(Line(k, item, 1 + (i + k) % 3, ITEMS[item - 1].unit_price)
                           for k, item in enumerate(sorted({1 + i % 3, 1 + (i * 5) % 3}), 1)))
        for i in range(n))
    return StoreData(store_id=1, items=tuple(ITEMS), baskets=baskets)


@pytest.fixture
def replayed(tmp_path):
    url = f"sqlite:///{tmp_path}/replay.db"
    src = sourcedb.open_source(url)
    sim = Simulator(src, _dataset(), faults=("duplicate", "late", "suspend_flip", "return", "cancel"), seed=3,
                    restock_every=7, recount_every=11)
    sim.prepare()
    sim.run()
    yield url, src
    src.close()


def test_replay_read_through_rest_equals_the_source(replayed, serve):
    url, src = replayed
    a = adapter(serve(url, page_limit=7))
    latest: dict[str, Txn] = {}
    for t in read_all(a, "sales", 5):
        assert t.txn_id not in latest, f"order {t.txn_id} read twice"
        latest[t.txn_id] = t
    got = {k: (t.status, tuple(sorted((ln.line, ln.sku, ln.qty, ln.price) for ln in t.lines))) for k, t in latest.items()}
    assert got == truth.source_transactions(src)
    assert {"cancelled", "completed"} <= {s for s, _ in got.values()}  # suspended ones were all flipped
    assert any(ln[2] < 0 for _, lines in got.values() for ln in lines)  # a return came through

    counts: dict[str, tuple[int, float]] = {}
    moves: dict[str, dict[str, tuple[int, float]]] = defaultdict(dict)
    for f in read_all(a, "stock", 4):
        if f.kind == "count":
            counts[f.sku] = max(counts.get(f.sku, (-1, 0.0)), (f.ts_us, f.qty))
        else:
            moves[f.sku][f.fact_id] = (f.ts_us, f.qty)
    stock = {sku: qty + sum(q for ts, q in moves[sku].values() if ts > at) for sku, (at, qty) in counts.items()}
    assert stock == truth.source_stock(src)

    for day in ("2020-09-13", "2020-09-14"):
        assert a.day_totals(day) == truth.source_day_totals(src, day)


def test_poller_over_rest_reaches_the_source_state(replayed, serve, tmp_path):
    url, src = replayed
    base = serve(url, page_limit=9, fault_429_rate=0.2, seed=5)
    cfg = PosConfig(adapter="rest", rest=RestSource(base_url=base, location_id="1"), page_size=6, poll_interval_s=0.01)
    store = EdgeStore(tmp_path / "edge.db")
    poller = PosPoller(adapter(base), store, cfg, HealthState("pos", stale_after_s=10), rand=lambda: 0.0)
    now, clean, cycles = 1000.0, 0, 0
    while clean < 3:  # 429s come at random: go on until three cycles in a row read everything cleanly
        _, wait_s = poller.cycle(now)
        clean = clean + 1 if not poller.backing_off else 0
        now += max(wait_s, 10.0)
        cycles += 1
        assert cycles < 300, "the poller never caught up through the 429s"
    assert store.current_txns() == truth.source_transactions(src)
    assert store.day_totals("2020-09-13") == truth.source_day_totals(src, "2020-09-13")
    store.close()


# --- faults and errors ----------------------------------------------------------------------------------

def test_rate_limit_is_retryable_with_retry_after(source_url, serve):
    a = adapter(serve(source_url, fault_429_rate=1.0))
    for call in (lambda: a.poll("sales", Cursor(), 5), lambda: a.poll("stock", Cursor(), 5), a.catalogue):
        with pytest.raises(UpstreamRetryable) as e:
            call()
        assert e.value.retry_after == 1.0 and e.value.code == "rate_limited"
        assert "RATE_LIMITED" in str(e.value)


def test_unreachable_source_is_retryable(source_url):
    with socket.socket() as s:  # a port nobody listens on (bound then released)
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(UpstreamRetryable) as e:
        adapter(f"http://127.0.0.1:{port}").poll("sales", Cursor(), 5)
    assert e.value.code == "unreachable" and e.value.retry_after is None
    assert isinstance(e.value.__cause__, Exception)


def test_wrong_token_is_fatal_and_never_shown(source_url, serve):
    base = serve(source_url)
    with pytest.raises(UpstreamFatal) as e:
        adapter(base, token="wrong-secret-value").poll("sales", Cursor(), 5)
    assert e.value.code == "auth" and "wrong-secret-value" not in str(e.value)


def test_wrong_path_is_fatal_and_source_outage_retryable(source_url, serve):
    base = serve(source_url)
    with pytest.raises(UpstreamFatal) as e:  # a base_url with a wrong path: 404, retrying will not help
        adapter(base + "/wrong-prefix").poll("sales", Cursor(), 5)
    assert e.value.code == "http_404"
    with sqlite3.connect(source_url[len("sqlite://"):]) as db:
        db.execute("ALTER TABLE ospos_sales RENAME TO gone")  # the POS database behind the API fails
    with pytest.raises(UpstreamRetryable) as e2:
        adapter(base).poll("sales", Cursor(), 5)
    assert e2.value.code == "unavailable"


def test_non_json_body_is_schema_drift():
    app = Flask("not-square")
    app.add_url_rule("/v2/orders/search", "x", lambda: "<html>maintenance</html>", methods=["POST"])
    app.add_url_rule("/v2/inventory/changes/batch-retrieve", "y", lambda: {"changes": {"not": "a list"}}, methods=["POST"])
    unsorted = Flask("ignores-sort")  # an API that ignores query.sort would make the keyset cut lose orders
    orders = [{"id": str(i), "updated_at": square.rfc3339(T0 - i * S)} for i in range(3)]
    unsorted.add_url_rule("/v2/orders/search", "x", lambda: {"orders": orders}, methods=["POST"])
    bases = [rest_api.serve(app), rest_api.serve(unsorted)]
    try:
        for base, stream in ((bases[0], "sales"), (bases[0], "stock"), (bases[1], "sales")):
            with pytest.raises(UpstreamFatal) as e:
                adapter(base).poll(stream, Cursor(), 5)
            assert e.value.code == "schema_drift"
    finally:
        rest_api.shutdown(app)
        rest_api.shutdown(unsorted)


def test_wait_for_change_just_waits_and_stops_early():
    stop = threading.Event()
    a = RestAdapter("pos", "s1", "http://127.0.0.1:9", "1", TOKEN, stop=stop)
    t0 = time.monotonic()
    assert a.wait_for_change(0.05) is False and time.monotonic() - t0 >= 0.05
    stop.set()
    t0 = time.monotonic()
    assert a.wait_for_change(30) is False and time.monotonic() - t0 < 1
    a.close()


def test_from_config_reads_the_token_from_the_environment(monkeypatch):
    cfg = PosConfig(adapter="rest", rest=RestSource(base_url="http://127.0.0.1:9/", location_id="1", token_env="ENDCAP_T_X"))
    monkeypatch.delenv("ENDCAP_T_X", raising=False)
    with pytest.raises(ConfigError) as e:
        RestAdapter.from_config(cfg)
    assert "ENDCAP_T_X" in str(e.value)
    monkeypatch.setenv("ENDCAP_T_X", "s3cret")
    a = RestAdapter.from_config(cfg)
    assert a.streams == ("sales", "stock") and "s3cret" not in repr(a._session.auth)
    a.close()

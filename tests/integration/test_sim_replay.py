"""The store simulator replaying real baskets into a real SQLite POS database, with every fault.

Checks that the source ends up telling the truth the simulator kept (stock by the edge's rule, every
basket's lines and status), that each fault really happened and left its mark in the database, and
that a seed replays identically.
"""
from __future__ import annotations

import math
import sqlite3
import threading
import time
from collections import Counter
from datetime import datetime, timezone

import pytest

from endcap.sim import truth
from endcap.sim.dataset import load_store
from endcap.sim.errors import SimError
from endcap.sim.faults import ALL_FAULTS, SKEW_S
from endcap.sim.replay import RETURN_ID_OFFSET, Simulator
from endcap.sim.sourcedb import open_source, text_to_us

US = 1_000_000
TABLES = ("ospos_items", "ospos_item_quantities", "ospos_sales", "ospos_sales_items", "ospos_inventory")


@pytest.fixture(scope="module")
def data():
    return load_store(367, max_lines=2000)


def replay(path, data, faults=ALL_FAULTS, seed=1, **kw):
    src = open_source(f"sqlite:///{path}")
    sim = Simulator(src, data, faults=faults, seed=seed, **kw)
    sim.prepare()
    sim.run()
    return src, sim


@pytest.fixture(scope="module")
def replayed(data, tmp_path_factory):
    # a high low-stock mark, so a few weeks of baskets already trigger restocks
    src, sim = replay(tmp_path_factory.mktemp("sim") / "pos.db", data, low_stock=45)
    yield src, sim
    src.close()


def targets(sim, kind) -> set[int]:
    return {a.target for acts in sim.plan.actions.values() for a in acts if a.kind == kind}


def dump(path) -> dict[str, list[tuple]]:
    with sqlite3.connect(path) as conn:
        return {t: conn.execute(f"SELECT * FROM {t} ORDER BY 1, 2, 3, 4").fetchall() for t in TABLES}


def test_source_stock_by_the_edge_rule_equals_the_true_stock(replayed, data):
    src, sim = replayed
    stock = truth.source_stock(src)
    assert stock == sim.expected_stock()
    assert set(stock) == {str(i.item_id) for i in data.items}
    # recounts and restocks happened, so the rule was exercised beyond "initial count + movements"
    assert src.query("SELECT COUNT(*) FROM ospos_inventory WHERE trans_comment = 'restock'")[0][0] > 0
    start = src.to_db(sim.start_us)
    assert src.query("SELECT COUNT(*) FROM ospos_item_quantities WHERE updated_at > ?", (start,))[0][0] > 0


def test_every_fault_happened_as_planned(replayed):
    _, sim = replayed
    assert set(sim.fault_counts) == set(ALL_FAULTS)
    assert all(n > 0 for n in sim.fault_counts.values())
    planned = sim.plan.counts()
    for kind in ("duplicate", "late", "suspend_flip", "return", "cancel", "added_column"):
        assert sim.fault_counts[kind] == planned[kind], kind


def test_every_basket_is_in_the_source_with_its_final_status(replayed, data):
    src, sim = replayed
    txns = truth.source_transactions(src)
    cancelled = targets(sim, "cancel")
    for i, b in enumerate(data.baskets):
        status, lines = txns[str(i + 1)]
        assert status == ("cancelled" if i in cancelled else "completed")
        assert lines == tuple((ln.line, str(ln.item_id), float(ln.quantity), ln.unit_price) for ln in b.lines)
    returns = {k: v for k, v in txns.items() if int(k) > RETURN_ID_OFFSET}
    assert len(returns) == sim.fault_counts["return"]
    assert len(txns) == len(data.baskets) + len(returns)


def test_returns_are_new_sales_with_negative_lines_of_the_original(replayed, data):
    src, sim = replayed
    txns = truth.source_transactions(src)
    for acts in sim.plan.actions.values():
        for a in (x for x in acts if x.kind == "return"):
            status, lines = txns[str(RETURN_ID_OFFSET + a.target + 1)]
            orig = {ln.line: ln for ln in data.baskets[a.target].lines}
            assert status == "completed"
            assert [(sku, qty, price) for _, sku, qty, price in lines] == [
                (str(orig[n].item_id), -float(orig[n].quantity), orig[n].unit_price) for n in a.lines]
    assert src.query("SELECT COUNT(*) FROM ospos_sales WHERE sale_type = 4")[0][0] == sim.fault_counts["return"]


def test_duplicates_move_only_the_change_time(replayed):
    src, sim = replayed
    for sid in sorted(t + 1 for t in targets(sim, "duplicate")):
        sale_time, updated = src.query("SELECT sale_time, updated_at FROM ospos_sales WHERE sale_id = ?", (sid,))[0]
        assert text_to_us(updated) > text_to_us(sale_time)
        # one movement per line: re-writing the sale did not sell it twice
        moves = src.query("SELECT COUNT(*) FROM ospos_inventory WHERE trans_comment = ?", (f"POS {sid}",))[0][0]
        lines = src.query("SELECT COUNT(*) FROM ospos_sales_items WHERE sale_id = ?", (sid,))[0][0]
        assert moves == lines


def test_late_sales_land_behind_sales_written_before_them(replayed):
    src, sim = replayed
    # write order = order of each completed sale's first stock movement
    rows = src.query(
        "SELECT s.sale_id, s.updated_at, MIN(i.trans_id) FROM ospos_sales s JOIN ospos_inventory i"
        " ON i.trans_comment = 'POS ' || s.sale_id GROUP BY s.sale_id ORDER BY 3"
    )
    newest_before, behind = 0, set()
    for sid, updated, _ in rows:
        us = text_to_us(updated)
        if us <= newest_before:  # equal times: the compound cursor (time, id) may have passed it too
            behind.add(sid - 1)
        newest_before = max(newest_before, us)
    assert sim.plan.held and sim.plan.held <= behind


def test_clock_skew_shows_in_updated_at_both_ways(replayed):
    src, _ = replayed
    offsets = Counter()
    for sale_time, updated in src.query("SELECT sale_time, updated_at FROM ospos_sales WHERE sale_type = 0"):
        off = (text_to_us(updated) - text_to_us(sale_time)) / US
        if abs(abs(off) - SKEW_S) < 1:
            offsets[math.copysign(1, off)] += 1
    assert offsets[1.0] > 0 and offsets[-1.0] > 0


def test_added_column_does_not_bother_explicit_readers(replayed):
    src, sim = replayed
    assert src.has_column("ospos_sales_items", "loyalty_points")
    filled = src.query("SELECT COUNT(*) FROM ospos_sales_items WHERE loyalty_points <> 0")[0][0]
    unfilled = src.query("SELECT COUNT(*) FROM ospos_sales_items WHERE loyalty_points = 0")[0][0]
    assert filled > 0 and unfilled > 0  # rows from before the change and after it


def test_day_totals_count_completed_sales_of_that_day(data, tmp_path):
    src, sim = replay(tmp_path / "clean.db", data, faults=())
    day = datetime.fromtimestamp(data.baskets[0].business_us / US, timezone.utc).date()
    on_day = [b for b in data.baskets if datetime.fromtimestamp(b.business_us / US, timezone.utc).date() == day]
    totals = truth.source_day_totals(src, day.isoformat())
    assert (totals.day, totals.txns) == (day.isoformat(), len(on_day))
    assert totals.lines == sum(len(b.lines) for b in on_day)
    assert totals.qty == sum(ln.quantity for b in on_day for ln in b.lines)
    assert totals.value == pytest.approx(sum(ln.quantity * ln.unit_price for b in on_day for ln in b.lines), abs=0.005)
    assert truth.source_day_totals(src, "1999-01-01").txns == 0
    src.close()


def test_day_totals_leave_out_cancelled_and_count_returns_negative(replayed):
    src, sim = replayed
    cancelled = targets(sim, "cancel")
    day = src.query("SELECT substr(sale_time, 1, 10) FROM ospos_sales WHERE sale_id = ?", (min(cancelled) + 1,))[0][0]
    totals = truth.source_day_totals(src, day)
    txns = truth.source_transactions(src)
    rows = src.query("SELECT sale_id FROM ospos_sales WHERE sale_time LIKE ? AND sale_status = 0", (f"{day}%",))
    lines = [ln for (sid,) in rows for ln in txns[str(sid)][1]]
    assert totals.txns == len(rows) and totals.lines == len(lines)
    assert totals.value == pytest.approx(sum(q * p for _, _, q, p in lines), abs=0.005)


def test_same_seed_writes_the_same_database(data, replayed, tmp_path):
    _, first = replayed
    replay(tmp_path / "a.db", data, seed=1)[0].close()
    replay(tmp_path / "b.db", data, seed=1)[0].close()
    replay(tmp_path / "c.db", data, seed=2)[0].close()
    assert dump(tmp_path / "a.db") == dump(tmp_path / "b.db")
    assert dump(tmp_path / "a.db") != dump(tmp_path / "c.db")


def test_paced_replay_stops_at_once_resumes_and_restocks_from_another_thread(data, tmp_path):
    src = open_source(f"sqlite:///{tmp_path / 'paced.db'}")
    sim = Simulator(src, data, speed=200_000.0, faults=ALL_FAULTS, seed=3)  # the sample's weeks in ~10 s
    sim.prepare()
    stop = threading.Event()
    worker = threading.Thread(target=sim.run, args=(stop,))
    worker.start()
    deadline, pause = time.monotonic() + 30, threading.Event()
    while sim.progress().baskets < 3:  # the paced replay is under way
        assert time.monotonic() < deadline
        pause.wait(0.01)
    item = data.baskets[0].lines[0].item_id
    t_commit = sim.restock(item, 7)
    assert t_commit <= time.perf_counter()
    with sqlite3.connect(tmp_path / "paced.db") as other:  # committed: another connection sees it now
        assert other.execute("SELECT COUNT(*) FROM ospos_inventory WHERE trans_comment = 'restock'"
                             " AND trans_items = ? AND trans_inventory = 7", (item,)).fetchone()[0] == 1
    t_stop = time.perf_counter()
    stop.set()
    worker.join(5)
    assert not worker.is_alive() and time.perf_counter() - t_stop < 1.0
    assert 0 < sim.progress().baskets < len(data.baskets)
    assert truth.source_stock(src) == sim.expected_stock()  # consistent at the stop
    sim.speed = math.inf
    sim.run()
    assert sim.done and truth.source_stock(src) == sim.expected_stock()
    assert len(truth.source_transactions(src)) == len(data.baskets) + sim.fault_counts["return"]
    src.close()


def test_step_replays_one_basket_at_a_time(data, tmp_path):
    src = open_source(f"sqlite:///{tmp_path / 'step.db'}")
    sim = Simulator(src, data, faults=(), seed=1)
    sim.prepare()
    assert sim.step() and sim.step()
    assert set(truth.source_transactions(src)) == {"1", "2"}
    while sim.step():
        pass
    assert sim.done and truth.source_stock(src) == sim.expected_stock()
    src.close()


def test_a_used_database_is_refused_unless_reset(data, replayed, tmp_path):
    path = tmp_path / "used.db"
    replay(path, data, faults=())[0].close()
    src = open_source(f"sqlite:///{path}")
    with pytest.raises(SimError, match="already holds"):
        Simulator(src, data).prepare()
    sim = Simulator(src, data, faults=ALL_FAULTS)
    sim.prepare(reset=True)
    sim.run()
    assert truth.source_stock(src) == sim.expected_stock()
    with pytest.raises(SimError, match="item 1:"):
        sim.restock(1, 5)
    src.close()


def test_source_is_in_wal_mode_with_microsecond_text_times(replayed):
    src, _ = replayed
    assert src.query("PRAGMA journal_mode")[0][0] == "wal"
    for (updated,) in src.query("SELECT updated_at FROM ospos_sales LIMIT 50"):
        assert len(updated) == 26 and updated[19] == "."

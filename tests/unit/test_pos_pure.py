"""Pure pos logic: OSPOS row mapping, cursor arithmetic and sweeps, stock rules, reconciliation."""
from datetime import datetime
from decimal import Decimal

import pytest

from endcap.pos import reconcile, stock
from endcap.pos.adapters import ospos
from endcap.pos.adapters.api import Cursor, DayTotals
from endcap.pos.cursor import SweepPlan, advance

SALE = {"sale_id": 7, "sale_time": "2017-03-01 10:00:00.000000", "customer_id": 900, "sale_status": 0,
        "sale_type": 0, "updated_at": "2017-03-01 10:00:01.500000"}
ITEMS = [{"item_id": 11, "line": 2, "quantity_purchased": Decimal("2"), "item_unit_price": Decimal("1.25")},
         {"item_id": 12, "line": 1, "quantity_purchased": 1, "item_unit_price": 3.5}]


def test_completed_sale_maps_to_canonical_txn():
    t = ospos.sale_to_txn("ospos", "s1", SALE, ITEMS)
    assert (t.txn_id, t.status, t.shopper_id) == ("7", "completed", "900")
    assert [(ln.line, ln.sku, ln.qty, ln.price, ln.type) for ln in t.lines] == [(1, "12", 1.0, 3.5, "sale"), (2, "11", 2.0, 1.25, "sale")]
    assert t.change_us == 1488362401500000 and t.business_ts == 1488362400.0


def test_datetime_columns_from_postgres_are_accepted():
    sale = dict(SALE, sale_time=datetime(2017, 3, 1, 10), updated_at=datetime(2017, 3, 1, 10, 0, 1, 500000))
    assert ospos.sale_to_txn("p", "s", sale, ITEMS).change_us == 1488362401500000


def test_version_ignores_change_time_but_not_content():
    a = ospos.sale_to_txn("o", "s", SALE, ITEMS)
    b = ospos.sale_to_txn("o", "s", dict(SALE, updated_at="2017-03-02 00:00:00.000000"), ITEMS)
    c = ospos.sale_to_txn("o", "s", dict(SALE, sale_status=2), ITEMS)
    assert a.source_version == b.source_version != c.source_version
    assert {ln.type for ln in c.lines} == {"void"}


def test_returns_are_negative_whatever_the_sign_in_the_row():
    t = ospos.sale_to_txn("o", "s", dict(SALE, sale_type=4), ITEMS)
    assert all(ln.type == "return" and ln.qty < 0 for ln in t.lines)
    t = ospos.sale_to_txn("o", "s", SALE, [dict(ITEMS[0], quantity_purchased=-1)])
    assert t.lines[0].type == "return" and t.lines[0].qty == -1


@pytest.mark.parametrize("sale,items,reason", [
    (dict(SALE, sale_status=9), ITEMS, "sale_status 9"),
    (dict(SALE, sale_time=None), ITEMS, "sale_time is missing"),
    (dict(SALE, sale_time="yesterday"), ITEMS, "sale_time is not a timestamp"),
    (SALE, [], "no items"),
    (SALE, [dict(ITEMS[0], quantity_purchased="lots")], "quantity_purchased is not a number"),
    (SALE, [dict(ITEMS[0], quantity_purchased=0)], "quantity_purchased is 0"),
    (SALE, [dict(ITEMS[0], item_unit_price=-1)], "negative"),
    (SALE, [dict(ITEMS[0], item_unit_price=float("nan"))], "not finite"),
    (SALE, [ITEMS[0], ITEMS[0]], "appears twice"),
    (SALE, [dict(ITEMS[0], item_id=None)], "item_id is missing"),
])
def test_malformed_rows_raise_with_reason(sale, items, reason):
    with pytest.raises(ospos.RowError, match=reason):
        ospos.sale_to_txn("o", "s", sale, items)


def test_cursor_only_moves_forward_and_compares_keys_numerically():
    a = Cursor(100, "9")
    assert advance(a, Cursor(100, "10")) == Cursor(100, "10")
    assert advance(a, Cursor(99, "99")) == a
    assert advance(Cursor(), Cursor(1, "")) == Cursor(1, "")
    # "" is the start of its microsecond: any key at that time is after it (no livelock on re-reads)
    assert advance(Cursor(5, ""), Cursor(5, "3")) == Cursor(5, "3")
    assert advance(Cursor(5, "3"), Cursor(5, "")) == Cursor(5, "3")


def test_sweeps_run_at_start_on_quarter_lookback_on_hidden_change_and_on_interval():
    plan = SweepPlan(lookback_us=400, interval_s=5)
    assert plan.due(Cursor(0), now=0, changed_behind=False)
    assert plan.start(Cursor(1000)) == Cursor(600, "")
    plan.progress(Cursor(1000), finished=True, now=0)
    assert not plan.due(Cursor(1099), now=1, changed_behind=False)
    assert plan.due(Cursor(1100), now=1, changed_behind=False)
    assert plan.due(Cursor(1000), now=1, changed_behind=True)
    assert plan.due(Cursor(1000), now=5, changed_behind=False)


def test_unfinished_sweep_continues_where_it_stopped():
    plan = SweepPlan(lookback_us=400, interval_s=5)
    plan.start(Cursor(1000))
    plan.progress(Cursor(800, "3"), finished=False, now=0)
    assert plan.due(Cursor(5000), now=0, changed_behind=False)
    assert plan.start(Cursor(5000)) == Cursor(800, "3")
    plan.progress(Cursor(5000), finished=True, now=0)
    assert plan.covered_us == 1000  # the target of the sweep that just finished


def test_late_row_is_always_inside_some_sweep_even_after_bursts():
    """A row written while the cursor stands at c, dated up to a full lookback behind c, is re-read by
    a later sweep, even when the cursor then jumps far in one cycle (a burst of sales)."""
    import random

    rng = random.Random(1)
    lookback = 1200
    plan = SweepPlan(lookback_us=lookback, interval_s=1e9)
    pending_rows: list[int] = []
    missed = caught = 0
    cur = 0
    for _ in range(3000):
        # rows written while the cursor stands here, back-dated by up to the lookback
        pending_rows += [cur - rng.randint(0, lookback) for _ in range(rng.randint(0, 2))]
        cur += rng.choice([1, 5, 40, 300, 5000])  # the cursor moves, sometimes by a huge burst
        if plan.due(Cursor(cur), now=0, changed_behind=False):
            start = plan.start(Cursor(cur)).ts_us
            caught += sum(1 for r in pending_rows if r >= start)
            missed += sum(1 for r in pending_rows if r < start)
            pending_rows = []
            plan.progress(Cursor(cur), finished=True, now=0)
    assert caught > 1000 and missed == 0


RULES = stock.StockRules(feed_ttl_s=60, count_max_age_us=3_600_000_000)


def test_stock_level_is_count_plus_later_moves():
    assert stock.level(10, 1_000, -3, rules=RULES, source_now_us=2_000, last_feed_ok=100, now=120) == 7


@pytest.mark.parametrize("count,count_us,feed_ok,now,source_now", [
    (None, None, 100, 120, 2_000),  # never counted
    (10, 1_000, None, 120, 2_000),  # feed never worked
    (10, 1_000, 100, 161, 2_000),  # feed stale
    (10, 1_000, 100, 120, 1_000 + 3_600_000_001),  # count too old in source time
])
def test_stock_unknown_fails_closed(count, count_us, feed_ok, now, source_now):
    assert stock.level(count, count_us, 0, rules=RULES, source_now_us=source_now, last_feed_ok=feed_ok, now=now) is None


def test_reconcile_matches_and_closed_days():
    a = DayTotals("2017-01-01", 3, 7, 9.0, 12.34)
    assert reconcile.matches(a, DayTotals("2017-01-01", 3, 7, 9.0, 12.3449))
    assert not reconcile.matches(a, DayTotals("2017-01-01", 3, 6, 9.0, 12.34))
    assert reconcile.matches(a, DayTotals("2017-01-01", 3, 7, 9.0, 12.35))  # half-cent rounding either way
    assert not reconcile.matches(a, DayTotals("2017-01-01", 3, 7, 9.0, 12.36))
    day_end = 1483315200_000000  # 2017-01-02T00:00Z
    day = ["2017-01-01"]
    assert reconcile.closed_days(day, {}, day_end + 10, 10, now=0) == day
    assert reconcile.closed_days(day, {}, day_end + 9, 10, now=0) == []
    assert reconcile.closed_days(day, {"2017-01-01": (True, 0.0)}, day_end + 99, 10, now=1e9) == []
    # a day that differed is checked again, but only once per recheck period
    assert reconcile.closed_days(day, {"2017-01-01": (False, 100.0)}, day_end + 99, 10, now=200, recheck_s=1000) == []
    assert reconcile.closed_days(day, {"2017-01-01": (False, 100.0)}, day_end + 99, 10, now=1101, recheck_s=1000) == day

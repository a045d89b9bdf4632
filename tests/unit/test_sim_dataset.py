"""Loading a store from the real Complete Journey data (endcap.sim.dataset)."""
from __future__ import annotations

import time

import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from endcap.sim.dataset import MAX_LINE_QTY, data_dir, item_name, load_store
from endcap.sim.errors import SimError

STORE = 367


@pytest.fixture(scope="module")
def store():
    t0 = time.perf_counter()
    data = load_store(STORE)
    return data, time.perf_counter() - t0


@pytest.fixture(scope="module")
def raw():
    with data_dir().joinpath("transactions.parquet").open("rb") as f:
        return pq.read_table(f, filters=[("store_id", "==", STORE)])


def test_loads_a_whole_store_fast(store):
    data, seconds = store
    assert seconds < 5.0
    assert data.store_id == STORE
    assert len(data.baskets) > 3000 and len(data.items) > 10000


def test_every_raw_line_is_kept_or_counted_as_skipped(store, raw):
    data, _ = store
    assert data.line_count + sum(data.skipped.values()) == raw.num_rows == 41334
    bad = pc.or_(pc.less_equal(raw["quantity"], 0), pc.less_equal(raw["sales_value"], 0))
    assert data.skipped["non_positive"] == pc.sum(bad).as_py()
    assert data.skipped["fuel"] > 0


def test_baskets_are_in_business_time_order_with_clean_lines(store):
    data, _ = store
    items = {i.item_id for i in data.items}
    times = [b.business_us for b in data.baskets]
    assert times == sorted(times)
    assert len({b.basket_id for b in data.baskets}) == len(data.baskets)
    for b in data.baskets:
        assert [ln.line for ln in b.lines] == list(range(1, len(b.lines) + 1))
        assert len({ln.item_id for ln in b.lines}) == len(b.lines)
        for ln in b.lines:
            assert isinstance(ln.quantity, int) and 0 < ln.quantity <= MAX_LINE_QTY
            assert ln.unit_price >= 0.01 and ln.item_id in items
    # the first basket of store 367 in the data: 2017-01-01 18:24:46 UTC, household 883
    first = data.baskets[0]
    assert (first.basket_id, first.customer_id, first.business_us) == (31198481877, 883, 1483295086 * 10**6)


def test_line_price_is_sales_value_over_quantity_in_cents(store, raw):
    data, _ = store
    first = data.baskets[0]
    rows = raw.filter(pc.equal(raw["basket_id"], first.basket_id)).to_pylist()
    by_product = {r["product_id"]: r for r in rows}
    for ln in first.lines:
        r = by_product[ln.item_id]
        assert ln.quantity == r["quantity"]
        assert ln.unit_price == round(r["sales_value"] / r["quantity"], 2)


def test_catalogue_price_is_the_median_line_price(store):
    data, _ = store
    lines: dict[int, list[float]] = {}
    for b in data.baskets:
        for ln in b.lines:
            lines.setdefault(ln.item_id, []).append(ln.unit_price)
    assert set(lines) == {i.item_id for i in data.items}
    for item in data.items:
        cents = sorted(round(p * 100) for p in lines[item.item_id])
        lo, hi = cents[(len(cents) - 1) // 2], cents[len(cents) // 2]
        assert item.unit_price == (lo + hi + 1) // 2 / 100  # a half cent rounds up
        assert item.unit_price > 0 and item.name and item.category


def test_names_and_categories_come_from_products(store):
    data, _ = store
    by_id = {i.item_id: i for i in data.items}
    beans = by_id[818980]
    assert beans.name == "National PREPARED BEANS - BAKED W/PORK"
    assert beans.category == "BEANS - CANNED GLASS & MW"


def test_item_name_falls_back():
    assert item_name("Private", "BREAD", "PASTRY", 1) == "Private BREAD"
    assert item_name("National", None, "MISCELLANEOUS", 2) == "National MISCELLANEOUS"
    assert item_name(None, None, None, 3) == "item 3"
    assert item_name(None, "MILK", None, 4) == "MILK"


def test_max_lines_keeps_whole_baskets_from_the_start(store):
    data, _ = store
    part = load_store(STORE, max_lines=2000)
    assert 1900 <= part.line_count <= 2000
    assert part.baskets == data.baskets[: len(part.baskets)]
    assert part.items == data.items  # the catalogue does not depend on how much is replayed
    assert load_store(STORE, max_lines=0).baskets == ()


def test_unknown_store_is_a_clear_error():
    with pytest.raises(SimError, match="store 99999"):
        load_store(99999)
    with pytest.raises(SimError, match="max_lines"):
        load_store(STORE, max_lines=-1)

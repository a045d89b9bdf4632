"""Pure Square mapping: orders → Txn, inventory changes → StockFact, catalogue, cursor order, Retry-After."""
from __future__ import annotations

import itertools

import pytest

from endcap.pos.adapters import square
from endcap.pos.adapters.api import Cursor
from endcap.pos.cursor import advance

ORDER = {
    "id": "ORD1", "location_id": "L1", "state": "COMPLETED", "version": 3, "customer_id": "CUST9",
    "created_at": "2017-03-01T10:00:00Z", "updated_at": "2017-03-01T10:00:01.5Z",
    "line_items": [
        {"uid": "a", "catalog_object_id": "SKU12", "quantity": "1", "base_price_money": {"amount": 350, "currency": "USD"}},
        {"uid": "b", "catalog_object_id": "SKU11", "quantity": "2.5", "base_price_money": {"amount": 125, "currency": "USD"}},
    ],
}


def lines(t):
    return [(ln.line, ln.sku, ln.qty, ln.price, ln.type) for ln in t.lines]


def test_completed_order_maps_to_canonical_txn():
    t = square.order_to_txn("sq", "s1", ORDER)
    assert (t.source, t.store, t.txn_id, t.status, t.shopper_id, t.source_version) == ("sq", "s1", "ORD1", "completed", "CUST9", "3")
    assert lines(t) == [(1, "SKU12", 1.0, 3.5, "sale"), (2, "SKU11", 2.5, 1.25, "sale")]
    assert t.change_us == 1488362401500000 and t.business_ts == 1488362400.0


@pytest.mark.parametrize("state,status,kind", [("OPEN", "suspended", "sale"), ("CANCELED", "cancelled", "void")])
def test_open_is_suspended_and_canceled_voids_lines(state, status, kind):
    t = square.order_to_txn("sq", "s1", dict(ORDER, state=state))
    assert t.status == status and {ln.type for ln in t.lines} == {kind}
    assert [ln.qty for ln in t.lines] == [1.0, 2.5]


def test_returns_become_negative_return_lines_numbered_after_sales():
    ret = {"uid": "r", "source_order_id": "ORD0", "return_line_items": [
        {"catalog_object_id": "SKU7", "quantity": "3", "base_price_money": {"amount": 199, "currency": "USD"}}]}
    t = square.order_to_txn("sq", "s1", dict(ORDER, returns=[ret]))
    assert lines(t)[-1] == (3, "SKU7", -3.0, 1.99, "return")
    base = {k: v for k, v in ORDER.items() if k != "line_items"}
    only = square.order_to_txn("sq", "s1", dict(base, returns=[ret]))
    assert lines(only) == [(1, "SKU7", -3.0, 1.99, "return")]
    voided = square.order_to_txn("sq", "s1", dict(base, returns=[ret], state="CANCELED"))
    assert lines(voided) == [(1, "SKU7", -3.0, 1.99, "void")]


def test_version_is_the_sources_own_and_no_customer_is_none():
    a = square.order_to_txn("sq", "s", ORDER)
    b = square.order_to_txn("sq", "s", dict(ORDER, version=4, customer_id=None))
    assert a.source_version != b.source_version and b.shopper_id is None


def _item(**kw):
    it = dict(ORDER["line_items"][0])
    it.update(kw)
    return {k: v for k, v in it.items() if v is not None}


@pytest.mark.parametrize("change,reason", [
    ({"id": None}, "id is missing"),
    ({"updated_at": None}, "updated_at is missing"),
    ({"updated_at": "yesterday"}, "updated_at is not an RFC 3339 timestamp"),
    ({"created_at": None}, "created_at is missing"),
    ({"state": "DRAFT"}, "state 'DRAFT'"),
    ({"version": "7"}, "version is not an integer"),
    ({"line_items": []}, "no line_items"),
    ({"line_items": [_item(quantity="two")]}, "line_items[0].quantity is not a number: 'two'"),
    ({"line_items": [_item(quantity="NaN")]}, "line_items[0].quantity is not finite"),
    ({"line_items": [_item(quantity="0")]}, "line_items[0].quantity '0' is not positive"),
    ({"line_items": [_item(catalog_object_id=None)]}, "line_items[0].catalog_object_id is missing"),
    ({"line_items": [_item(base_price_money={"amount": "3.50"})]}, "line_items[0].base_price_money.amount is not an integer"),
    ({"line_items": [_item(base_price_money=None)]}, "line_items[0].base_price_money is missing"),
    ({"returns": [{"return_line_items": [_item(quantity=None)]}]}, "returns[0].return_line_items[0].quantity is missing"),
])
def test_malformed_orders_name_the_field(change, reason):
    order = {k: v for k, v in dict(ORDER, **change).items() if v is not None}
    with pytest.raises(square.RowError) as e:
        square.order_to_txn("sq", "s", order)
    assert reason in str(e.value)


def test_raw_line_count_survives_garbage():
    assert square.raw_line_count(dict(ORDER, returns=[{"return_line_items": [{}]}, "junk"])) == 3
    assert square.raw_line_count({"line_items": "junk"}) == 0


# --- inventory -------------------------------------------------------------------------------------------

def _count(**kw):
    body = {"id": "PC1", "catalog_object_id": "SKU1", "state": "IN_STOCK", "quantity": "86",
            "occurred_at": "2016-11-16T22:24:49.028Z", "created_at": "2016-11-16T22:25:24.878Z"}
    body.update(kw)
    return {"type": "PHYSICAL_COUNT", "physical_count": body}


def _adjust(src, dst, qty="3"):
    return {"type": "ADJUSTMENT", "adjustment": {
        "id": "ADJ1", "catalog_object_id": "SKU1", "from_state": src, "to_state": dst, "quantity": qty,
        "occurred_at": "2016-11-16T22:24:49Z", "created_at": "2016-11-16T22:24:50Z"}}


def test_physical_count_is_a_count_dated_when_it_happened():
    f = square.change_to_fact(_count())
    assert (f.kind, f.fact_id, f.sku, f.qty, f.ts_us) == ("count", "PC1", "SKU1", 86.0, 1479335089028000)
    assert square.change_key(_count()) == (1479335124878000, "PC1", 1479335089028000)
    assert square.change_to_fact(_count(state="WASTE")) is None


@pytest.mark.parametrize("src,dst,qty", [("NONE", "IN_STOCK", 3.0), ("IN_STOCK", "SOLD", -3.0), ("IN_STOCK", "WASTE", -3.0),
                                         ("UNLINKED_RETURN", "IN_STOCK", 3.0), ("NONE", "SOLD", None), ("IN_STOCK", "IN_STOCK", None)])
def test_adjustments_move_on_shelf_stock_with_a_sign(src, dst, qty):
    f = square.change_to_fact(_adjust(src, dst))
    assert (f.qty if f else None) == qty
    if f:
        assert f.kind == "delta" and f.fact_id == "ADJ1"


@pytest.mark.parametrize("change,reason", [
    ({"type": "MAGIC"}, "type 'MAGIC'"),
    ({"type": "ADJUSTMENT"}, "adjustment is missing"),
    (_count(quantity="lots"), "physical_count.quantity is not a number"),
    (_count(catalog_object_id=None), "physical_count.catalog_object_id is missing"),
    (_count(created_at=None), "physical_count.created_at is missing"),
    (_count(id=""), "physical_count.id is missing"),
])
def test_malformed_changes_name_the_field(change, reason):
    with pytest.raises(square.RowError) as e:
        square.change_to_fact(change)
    assert reason in str(e.value)


def test_transfers_are_not_facts():
    ch = {"type": "TRANSFER", "transfer": {"id": "T1", "created_at": "2020-01-01T00:00:00Z"}}
    assert square.change_to_fact(ch) is None


# --- catalogue -------------------------------------------------------------------------------------------

def test_catalogue_joins_variations_to_items_and_categories():
    var = {"type": "ITEM_VARIATION", "id": "V1", "item_variation_data": {
        "item_id": "I1", "name": "Regular", "price_money": {"amount": 299, "currency": "USD"}}}
    objects = [
        {"type": "CATEGORY", "id": "C1", "category_data": {"name": "Dairy"}},
        {"type": "ITEM", "id": "I1", "item_data": {"name": "Milk", "category_id": "C1", "variations": [var]}},
        var,
        {"type": "ITEM_VARIATION", "id": "V2", "item_variation_data": {"name": "Any", "pricing_type": "VARIABLE_PRICING"}},
        {"type": "ITEM_VARIATION", "id": "V3", "item_variation_data": {"name": "Bad", "price_money": {"amount": 1.5}}},
        {"type": "ITEM_VARIATION", "id": "V4", "is_deleted": True, "item_variation_data": {}},
    ]
    items, skipped = square.catalogue(objects)
    assert [(i.sku, i.name, i.category, i.price) for i in items] == [("V1", "Milk", "Dairy", 2.99), ("V2", "Any", "", 0.0)]
    assert len(skipped) == 1 and skipped[0].startswith("V3: item_variation_data.price_money.amount")


# --- cursor order, times, Retry-After -------------------------------------------------------------------

def test_is_after_agrees_with_the_stores_cursor_order():
    pks = ["1", "2", "9", "10", "100", "-3", "ORD1", "ORD10", "ORD9", "a"]
    points = [Cursor(ts, pk) for ts in (5, 6) for pk in pks]
    for a, b in itertools.product(points, points):
        # advance() keeps the later cursor; is_after must say the same about which one is later
        assert square.is_after(b.ts_us, b.pk, a) == (advance(a, b) == b and a != b)


def test_empty_pk_takes_the_whole_microsecond():
    assert square.is_after(5, "1", Cursor(5, "")) and square.is_after(5, "ORD", Cursor(5, ""))
    assert not square.is_after(4, "9", Cursor(5, ""))


def test_rfc3339_round_trips_microseconds():
    for us in (0, 1488362401500000, 1488362401000001):
        text = square.rfc3339(us)
        assert text.endswith("Z") and square.time_us(text, "t") == us
    assert square.time_us("2017-03-01T11:00:01.5+01:00", "t") == 1488362401500000


def test_retry_after_seconds_and_http_dates():
    assert square.parse_retry_after("1", 0) == 1.0
    assert square.parse_retry_after(" 2.5 ", 0) == 2.5
    assert square.parse_retry_after("-4", 0) == 0.0
    assert square.parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", 1445412470.0) == 10.0
    assert square.parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", 1445412490.0) == 0.0
    for junk in (None, "", "soon", "inf", "nan"):
        assert square.parse_retry_after(junk, 0) is None


def test_quantities_are_exact_decimals():
    assert square.quantity("0.1", "q") + square.quantity("0.2", "q") == square.quantity("0.3", "q")
    assert square.money({"amount": 1999, "currency": "USD"}, "m") == 19.99

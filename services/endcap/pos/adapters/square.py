"""Pure mapping of Square-style API objects (Orders, Inventory, Catalog) to canonical events. No I/O, no clock.

Square semantics (Connect v2): an order's ``state`` is OPEN (here: suspended), COMPLETED or CANCELED;
``version`` increases on every change of the order and is the source version (ADR 0002); quantities
are decimal *strings*; money is integer minor units ``{amount, currency}`` (cents: every currency we
meet has two decimals). A return is an order whose ``returns[].return_line_items`` carry positive
quantities; they become ``return`` lines with a negative quantity. A cancelled order's lines become
``void`` lines (as for OSPOS), keeping the sign their kind has.

Lines are numbered ``line_items`` first (index + 1), then return line items in order, so the numbering
is stable for a given order body.

Inventory: a ``PHYSICAL_COUNT`` of state IN_STOCK is an absolute count; an ``ADJUSTMENT`` moving
units into IN_STOCK adds, one moving them out of IN_STOCK subtracts; changes that never touch
IN_STOCK (NONE → SOLD, WASTE → NONE, …) do not change what is on the shelf and yield no fact.

Cursor order: a change is identified by (change time µs, id). Ids compare the way
``pos.cursor.advance`` compares them (numbers as numbers, else text), so the adapter's "already seen"
test and the store's cursor agree; an empty ``pk`` means "from the start of that microsecond".
"""
from __future__ import annotations

import math
from datetime import timezone
from decimal import Decimal, InvalidOperation
from email.utils import parsedate_to_datetime
from typing import Any, Optional

from ...core import timeutil
from .api import CatalogItem, Cursor, Quarantined, StockFact, Txn, TxnLine

STATES = {"COMPLETED": "completed", "OPEN": "suspended", "CANCELED": "cancelled"}
IN_STOCK = "IN_STOCK"


class RowError(ValueError):
    """An API object cannot become an event; the message is the quarantine reason and names the field."""


# --- scalar fields ------------------------------------------------------------------------------------

def _text(obj: dict[str, Any], key: str, what: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str) or not value:
        raise RowError(f"{what} is missing" if value in (None, "") else f"{what} is not a string: {value!r}")
    return value


def quantity(value: Any, what: str) -> Decimal:
    """A Square quantity (a decimal string; a JSON number is tolerated) as an exact, finite Decimal."""
    if value is None or isinstance(value, bool):
        raise RowError(f"{what} is missing")
    try:
        q = Decimal(value if isinstance(value, str) else str(value))
    except (InvalidOperation, ValueError) as e:
        raise RowError(f"{what} is not a number: {value!r}") from e
    if not q.is_finite():
        raise RowError(f"{what} is not finite: {value!r}")
    return q


def money(value: Any, what: str) -> float:
    """``{amount: int minor units, currency}`` → units (amount / 100)."""
    if not isinstance(value, dict):
        raise RowError(f"{what} is missing")
    amount = value.get("amount")
    if isinstance(amount, bool) or not isinstance(amount, int):
        raise RowError(f"{what}.amount is not an integer: {amount!r}")
    return float(Decimal(amount) / 100)


def time_us(value: Any, what: str) -> int:
    """An RFC 3339 timestamp as integer microseconds since the epoch."""
    if not isinstance(value, str) or not value:
        raise RowError(f"{what} is missing")
    try:
        return timeutil.us_from_text(value)
    except ValueError as e:
        raise RowError(f"{what} is not an RFC 3339 timestamp: {value!r}") from e


def rfc3339(us: int) -> str:
    """Microseconds → ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` (UTC, always six fractional digits)."""
    return timeutil.datetime_from_us(us).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# --- cursor order -------------------------------------------------------------------------------------

def pk_key(pk: str) -> tuple[int, int | str]:
    # must order ids exactly as pos.cursor._pk_key does: numbers as numbers ("10" > "9"), else text
    return (0, int(pk)) if pk.lstrip("-").isdigit() else (1, pk)


def is_after(ts_us: int, pk: str, cursor: Cursor) -> bool:
    """(ts_us, pk) comes strictly after ``cursor``; ``cursor.pk == ""`` takes all of ``cursor.ts_us``."""
    if ts_us != cursor.ts_us:
        return ts_us > cursor.ts_us
    return cursor.pk == "" or pk_key(pk) > pk_key(cursor.pk)


def sort_key(ts_us: int, pk: str) -> tuple[int, tuple[int, int | str]]:
    return ts_us, pk_key(pk)


# --- orders -------------------------------------------------------------------------------------------

def order_key(order: dict[str, Any]) -> tuple[int, str]:
    """(updated_at µs, id): where the order sits in the change order. Raises RowError if either is missing."""
    oid = _text(order, "id", "id")
    return time_us(order.get("updated_at"), "updated_at"), oid


def _lines(items: Any, field: str, kind: str, first: int) -> list[TxnLine]:
    if items is None:
        return []
    if not isinstance(items, list):
        raise RowError(f"{field} is not a list")
    out = []
    for i, it in enumerate(items):
        where = f"{field}[{i}]"
        if not isinstance(it, dict):
            raise RowError(f"{where} is not an object")
        sku = _text(it, "catalog_object_id", f"{where}.catalog_object_id")
        qty = quantity(it.get("quantity"), f"{where}.quantity")
        if qty <= 0:
            raise RowError(f"{where}.quantity {it.get('quantity')!r} is not positive")
        price = money(it.get("base_price_money"), f"{where}.base_price_money")
        if price < 0:
            raise RowError(f"{where}.base_price_money {price} is negative")
        signed = float(-qty if kind == "return" else qty)
        out.append(TxnLine(first + i, sku, signed, price, kind))
    return out


def order_to_txn(source: str, store: str, order: dict[str, Any]) -> Txn:
    """One Square order → a Txn.

    Raises:
        RowError: the order cannot be trusted (the reason names the field and value).
    """
    change_us, oid = order_key(order)
    state = order.get("state")
    status = STATES.get(state) if isinstance(state, str) else None
    if status is None:
        raise RowError(f"state {state!r} is not COMPLETED, OPEN or CANCELED")
    version = order.get("version")
    if isinstance(version, bool) or not isinstance(version, int):
        raise RowError("version is missing" if version is None else f"version is not an integer: {version!r}")
    business_us = time_us(order.get("created_at"), "created_at")
    lines = _lines(order.get("line_items"), "line_items", "sale", 1)
    returns = order.get("returns")
    if returns is not None and not isinstance(returns, list):
        raise RowError("returns is not a list")
    for r, ret in enumerate(returns or ()):
        if not isinstance(ret, dict):
            raise RowError(f"returns[{r}] is not an object")
        lines += _lines(ret.get("return_line_items"), f"returns[{r}].return_line_items", "return", len(lines) + 1)
    if not lines:
        raise RowError("order has no line_items and no return_line_items")
    if status == "cancelled":
        lines = [TxnLine(ln.line, ln.sku, ln.qty, ln.price, "void") for ln in lines]
    customer = order.get("customer_id")
    return Txn(
        source=source,
        store=store,
        txn_id=oid,
        business_ts=business_us / 1e6,
        status=status,
        source_version=str(version),
        change_us=change_us,
        lines=lines,
        shopper_id=customer if isinstance(customer, str) and customer else None,
    )


def raw_line_count(order: dict[str, Any]) -> int:
    """How many lines an order claims, even when it cannot be mapped (for control totals)."""
    items, returns = order.get("line_items"), order.get("returns")
    n = len(items) if isinstance(items, list) else 0
    for ret in returns if isinstance(returns, list) else ():
        items = ret.get("return_line_items") if isinstance(ret, dict) else None
        n += len(items) if isinstance(items, list) else 0
    return n


# --- inventory ----------------------------------------------------------------------------------------

_CHANGE_BODY = {"PHYSICAL_COUNT": "physical_count", "ADJUSTMENT": "adjustment", "TRANSFER": "transfer"}


def _change_body(change: dict[str, Any]) -> tuple[str, str, dict[str, Any]]:
    kind = change.get("type")
    field = _CHANGE_BODY.get(kind) if isinstance(kind, str) else None
    if field is None:
        raise RowError(f"type {kind!r} is not PHYSICAL_COUNT, ADJUSTMENT or TRANSFER")
    body = change.get(field)
    if not isinstance(body, dict):
        raise RowError(f"{field} is missing")
    return kind, field, body


def change_key(change: dict[str, Any]) -> tuple[int, str, int]:
    """(created_at µs, id, occurred_at µs) of an inventory change. Raises RowError naming the field.

    ``created_at`` (when Square recorded it) is what ``updated_after`` filters on, so it is the cursor
    time; ``occurred_at`` (when it happened) is what the API sorts by and what the fact is dated.
    """
    _, field, body = _change_body(change)
    cid = _text(body, "id", f"{field}.id")
    created = time_us(body.get("created_at"), f"{field}.created_at")
    occurred = time_us(body.get("occurred_at"), f"{field}.occurred_at") if body.get("occurred_at") is not None else created
    return created, cid, occurred


def change_to_fact(change: dict[str, Any]) -> Optional[StockFact]:
    """An inventory change → a count or a signed movement of on-shelf (IN_STOCK) units, or None.

    Raises:
        RowError: the change cannot be trusted (the reason names the field and value).
    """
    kind, field, body = _change_body(change)
    _, cid, occurred = change_key(change)
    if kind == "TRANSFER":
        return None  # between locations; a location's own adjustments carry its side of it
    sku = _text(body, "catalog_object_id", f"{field}.catalog_object_id")
    qty = quantity(body.get("quantity"), f"{field}.quantity")
    if kind == "PHYSICAL_COUNT":
        if body.get("state", IN_STOCK) != IN_STOCK:
            return None
        return StockFact("count", cid, sku, float(qty), occurred)
    src, dst = body.get("from_state"), body.get("to_state")
    if not isinstance(src, str) or not isinstance(dst, str):
        raise RowError(f"{field}.from_state/to_state is missing")
    if dst == IN_STOCK and src != IN_STOCK:
        return StockFact("delta", cid, sku, float(abs(qty)), occurred)
    if src == IN_STOCK and dst != IN_STOCK:
        return StockFact("delta", cid, sku, float(-abs(qty)), occurred)
    return None


# --- catalogue ----------------------------------------------------------------------------------------

def catalogue(objects: list[Any]) -> tuple[list[CatalogItem], list[str]]:
    """Catalog objects (ITEM_VARIATION, with ITEM and CATEGORY when present) → items, and skip reasons.

    The SKU is the variation's id (what order lines name as ``catalog_object_id``); the name and
    category come from its item when the item is in ``objects``. Variations may also arrive nested in
    ``item_data.variations``. A variable-priced variation has price 0.
    """
    items: dict[str, dict[str, Any]] = {}
    cats: dict[str, str] = {}
    variations: dict[str, dict[str, Any]] = {}
    for o in objects:
        if not isinstance(o, dict) or o.get("is_deleted") is True:
            continue
        kind, oid = o.get("type"), o.get("id")
        if kind == "ITEM" and isinstance(oid, str):
            data = o.get("item_data") if isinstance(o.get("item_data"), dict) else {}
            items[oid] = data
            nested = data.get("variations")
            for v in nested if isinstance(nested, list) else ():
                if isinstance(v, dict) and isinstance(v.get("id"), str) and v.get("is_deleted") is not True:
                    variations.setdefault(v["id"], v)
        elif kind == "CATEGORY" and isinstance(oid, str):
            data = o.get("category_data") if isinstance(o.get("category_data"), dict) else {}
            cats[oid] = str(data.get("name") or "")
        elif kind == "ITEM_VARIATION" and isinstance(oid, str):
            variations[oid] = o
    out, skipped = [], []
    for vid, v in variations.items():
        data = v.get("item_variation_data")
        if not isinstance(data, dict):
            skipped.append(f"{vid}: item_variation_data is missing")
            continue
        try:
            if data.get("pricing_type") == "VARIABLE_PRICING":
                price = 0.0
            else:
                price = money(data.get("price_money"), "item_variation_data.price_money")
        except RowError as e:
            skipped.append(f"{vid}: {e}")
            continue
        item = items.get(str(data.get("item_id")), {})
        name = str(item.get("name") or data.get("name") or vid)
        cat_id = item.get("category_id") or next(
            (c.get("id") for c in item.get("categories") or () if isinstance(c, dict)), None)
        out.append(CatalogItem(vid, name, cats.get(str(cat_id), ""), price))
    return out, skipped


# --- protocol details ---------------------------------------------------------------------------------

def parse_retry_after(value: Optional[str], now_s: float) -> Optional[float]:
    """``Retry-After`` (delay seconds or an HTTP-date) → seconds to wait from ``now_s``; None if absent/unusable."""
    if not value:
        return None
    value = value.strip()
    try:
        secs = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:  # RFC 9110 dates are GMT
            when = when.replace(tzinfo=timezone.utc)
        return max(0.0, when.timestamp() - now_s)
    return max(0.0, secs) if math.isfinite(secs) else None


def quarantine(stream: str, key: Any, reason: str, raw: Any) -> Quarantined:
    return Quarantined(stream, str(key), reason, repr(raw)[:2000])


"""Pure mapping of OSPOS-shaped rows to canonical events. No I/O, no clock.

OSPOS semantics (Open Source Point of Sale 3.x): ``sale_status`` 0 completed, 1 suspended,
2 cancelled; ``sale_type`` 4 is a return, whose items carry a negative ``quantity_purchased``.
A cancelled sale's lines become ``void`` lines. The price is the line's unit price; OSPOS's
per-line discount is not part of the control totals we reconcile (the source's own totals use the
same rule), so it is left out.

``source_version`` is a digest of what matters (status and lines), not of the change time: the same
sale re-written unchanged is a duplicate, not a new version.
"""
from __future__ import annotations

import hashlib
import math
from decimal import Decimal, InvalidOperation
from typing import Any, Iterable

from ...core import timeutil
from .api import Quarantined, Txn, TxnLine

SALE_STATUS = {0: "completed", 1: "suspended", 2: "cancelled"}
SALE_TYPE_RETURN = 4


class RowError(ValueError):
    """A row cannot become an event; the message is the quarantine reason."""


def _number(value: Any, what: str) -> float:
    if value is None or isinstance(value, bool):
        raise RowError(f"{what} is missing")
    try:
        x = float(Decimal(str(value)))
    except (InvalidOperation, ValueError) as e:
        raise RowError(f"{what} is not a number: {value!r}") from e
    if not math.isfinite(x):
        raise RowError(f"{what} is not finite: {value!r}")
    return x


def _int(value: Any, what: str) -> int:
    x = _number(value, what)
    if x != int(x):
        raise RowError(f"{what} is not an integer: {value!r}")
    return int(x)


def to_us(value: Any, what: str) -> int:
    """A timestamp column (datetime from PostgreSQL, text from SQLite) as microseconds."""
    if value is None:
        raise RowError(f"{what} is missing")
    if hasattr(value, "year"):
        return timeutil.us_from_datetime(value)
    try:
        return timeutil.us_from_text(str(value))
    except ValueError as e:
        raise RowError(f"{what} is not a timestamp: {value!r}") from e


def version_of(status: str, lines: Iterable[TxnLine]) -> str:
    h = hashlib.sha256(status.encode())
    for ln in sorted(lines, key=lambda x: x.line):
        h.update(f"|{ln.line}:{ln.sku}:{ln.qty!r}:{ln.price!r}:{ln.type}".encode())
    return h.hexdigest()[:20]


def sale_to_txn(source: str, store: str, sale: dict[str, Any], items: list[dict[str, Any]]) -> Txn:
    """One ``ospos_sales`` row and its ``ospos_sales_items`` rows → a Txn.

    Raises:
        RowError: the sale cannot be trusted (the reason names the column and value).
    """
    sale_id = sale.get("sale_id")
    status_code = _int(sale.get("sale_status"), "sale_status")
    status = SALE_STATUS.get(status_code)
    if status is None:
        raise RowError(f"sale_status {status_code} is not 0, 1 or 2")
    is_return = _int(sale.get("sale_type", 0), "sale_type") == SALE_TYPE_RETURN
    business_us = to_us(sale.get("sale_time"), "sale_time")
    change_us = to_us(sale.get("updated_at"), "updated_at")
    if not items:
        raise RowError("sale has no items")
    lines: list[TxnLine] = []
    seen: set[int] = set()
    for it in items:
        line = _int(it.get("line"), "line")
        if line in seen:
            raise RowError(f"line {line} appears twice")
        seen.add(line)
        if it.get("item_id") is None:
            raise RowError(f"line {line}: item_id is missing")
        qty = _number(it.get("quantity_purchased"), f"line {line}: quantity_purchased")
        price = _number(it.get("item_unit_price"), f"line {line}: item_unit_price")
        if qty == 0:
            raise RowError(f"line {line}: quantity_purchased is 0")
        if price < 0:
            raise RowError(f"line {line}: item_unit_price {price} is negative")
        if status == "cancelled":
            kind = "void"
        elif is_return or qty < 0:
            kind, qty = "return", -abs(qty)
        else:
            kind = "sale"
        lines.append(TxnLine(line, str(_int(it["item_id"], f"line {line}: item_id")), qty, price, kind))
    lines.sort(key=lambda x: x.line)
    customer = sale.get("customer_id")
    return Txn(
        source=source,
        store=store,
        txn_id=str(sale_id),
        business_ts=business_us / 1e6,
        status=status,
        source_version=version_of(status, lines),
        change_us=change_us,
        lines=lines,
        shopper_id=None if customer is None else str(customer),
    )


def quarantine(stream: str, key: Any, reason: str, row: Any) -> Quarantined:
    return Quarantined(stream, str(key), reason, repr(row)[:2000])

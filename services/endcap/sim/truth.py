"""What the gateway must end up with, read back from the POS database itself (the test oracle).

Responsibility: three read-only views of a source, independent of the simulator's memory, so tests and
benchmarks can compare the edge's state with the POS's:

- ``source_transactions``: every sale as it stands now (status and signed lines);
- ``source_day_totals``: control totals of one UTC business day (completed sales only);
- ``source_stock``: stock per SKU by the edge's rule, *latest count + movements dated after the count*.

Invariants: SKUs and sale ids are text (as the edge's canonical events carry them); quantities and
prices are floats (PostgreSQL's NUMERIC comes back as Decimal); nothing here writes or commits.
"""
from __future__ import annotations

from collections import defaultdict

from endcap.pos.adapters.api import DayTotals
from endcap.core import timeutil
from endcap.sim.sourcedb import Source

STATUS_NAMES = {0: "completed", 1: "suspended", 2: "cancelled"}

Lines = tuple[tuple[int, str, float, float], ...]


def source_transactions(source: Source) -> dict[str, tuple[str, Lines]]:
    """sale_id → (status, lines sorted by (line, sku)); a line is (line, sku, signed qty, unit price).

    Raises:
        SimError: a database error, or a sale_status outside OSPOS's 0/1/2.
    """
    from endcap.sim.errors import SimError

    out: dict[str, tuple[str, Lines]] = {}
    lines: dict[str, list[tuple[int, str, float, float]]] = defaultdict(list)
    for sale_id, item_id, line, qty, price in source.query(
        "SELECT sale_id, item_id, line, quantity_purchased, item_unit_price FROM ospos_sales_items"
    ):
        lines[str(sale_id)].append((int(line), str(item_id), float(qty), float(price)))
    for sale_id, status in source.query("SELECT sale_id, sale_status FROM ospos_sales"):
        if int(status) not in STATUS_NAMES:
            raise SimError(f"{source!r}: sale {sale_id} has sale_status {status}, not 0, 1 or 2")
        out[str(sale_id)] = (STATUS_NAMES[int(status)], tuple(sorted(lines.get(str(sale_id), ()))))
    return out


def source_day_totals(source: Source, day: str) -> DayTotals:
    """Control totals of completed sales (returns included, with their negative lines) whose
    ``sale_time`` falls on UTC date ``day`` (ISO ``YYYY-MM-DD``); qty rounded to 3 places, value to cents.

    Raises:
        ValueError: ``day`` is not an ISO date.
        SimError: a database error.
    """
    lo, hi = timeutil.day_bounds_us(day)
    row = source.query(
        "SELECT COUNT(DISTINCT s.sale_id), COUNT(i.line), COALESCE(SUM(i.quantity_purchased), 0),"
        " COALESCE(SUM(i.quantity_purchased * i.item_unit_price), 0)"
        " FROM ospos_sales s JOIN ospos_sales_items i ON i.sale_id = s.sale_id"
        " WHERE s.sale_status = 0 AND s.sale_time >= ? AND s.sale_time < ?",
        (source.to_db(lo), source.to_db(hi)),
    )[0]
    return DayTotals(day=day, txns=int(row[0]), lines=int(row[1]),
                     qty=round(float(row[2]), 3), value=round(float(row[3]), 2))


def source_stock(source: Source) -> dict[str, float]:
    """SKU → latest count + movements dated strictly after that count (location 1).

    Items without a count are left out: the edge treats their stock as unknown.

    Raises:
        SimError: a database error.
    """
    counts: dict[str, tuple[float, int]] = {}
    for item_id, qty, updated in source.query(
        "SELECT item_id, quantity, updated_at FROM ospos_item_quantities WHERE location_id = 1"
    ):
        counts[str(item_id)] = (float(qty), source.from_db(updated))
    stock = {sku: qty for sku, (qty, _) in counts.items()}
    for item_id, delta, when in source.query(
        "SELECT trans_items, trans_inventory, trans_date FROM ospos_inventory WHERE trans_location = 1"
    ):
        sku = str(item_id)
        if sku in counts and source.from_db(when) > counts[sku][1]:
            stock[sku] += float(delta)
    return stock

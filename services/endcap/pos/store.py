"""The edge's source of truth for POS/ERP data: one SQLite (WAL) file on the data partition.

Invariants:
- A page of events, its quarantined rows and the stream's next cursor are committed in ONE
  transaction: a crash before commit re-reads the page (at-least-once), the idempotent upserts make
  the effect exactly-once.
- Transactions are versioned, never updated in place or deleted: ``txn_versions``/``txn_lines`` keep
  every version the source showed; ``txn_current`` points at the one the source shows now.
- The cursor only moves forward.
"""
from __future__ import annotations


from pathlib import Path
from typing import Iterable

from ..core import messages as m
from ..core import timeutil
from ..core.sqlite import open_db, transaction
from .adapters.api import CatalogItem, Cursor, DayTotals, Quarantined, StockFact, Txn
from .cursor import advance

SCHEMA = """
CREATE TABLE IF NOT EXISTS txn_versions (
  store TEXT NOT NULL, txn_id TEXT NOT NULL, version TEXT NOT NULL, source TEXT NOT NULL,
  status TEXT NOT NULL, business_ts REAL NOT NULL, business_day TEXT NOT NULL, shopper_id TEXT,
  change_us INTEGER NOT NULL, received_at REAL NOT NULL,
  PRIMARY KEY (store, txn_id, version));
CREATE TABLE IF NOT EXISTS txn_lines (
  store TEXT NOT NULL, txn_id TEXT NOT NULL, version TEXT NOT NULL, line INTEGER NOT NULL,
  sku TEXT NOT NULL, qty REAL NOT NULL, price REAL NOT NULL, type TEXT NOT NULL,
  PRIMARY KEY (store, txn_id, version, line));
CREATE TABLE IF NOT EXISTS txn_current (
  store TEXT NOT NULL, txn_id TEXT NOT NULL, version TEXT NOT NULL, status TEXT NOT NULL,
  business_day TEXT NOT NULL, shopper_id TEXT, PRIMARY KEY (store, txn_id));
CREATE INDEX IF NOT EXISTS txn_current_day ON txn_current (business_day, status);
CREATE INDEX IF NOT EXISTS txn_current_shopper ON txn_current (shopper_id);
CREATE TABLE IF NOT EXISTS cursors (stream TEXT PRIMARY KEY, ts_us INTEGER NOT NULL, pk TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS quarantine (
  id INTEGER PRIMARY KEY, stream TEXT NOT NULL, source_key TEXT NOT NULL, reason TEXT NOT NULL,
  raw TEXT NOT NULL, at REAL NOT NULL, UNIQUE (stream, source_key, reason));
CREATE TABLE IF NOT EXISTS stock_counts (sku TEXT PRIMARY KEY, qty REAL NOT NULL, ts_us INTEGER NOT NULL, fact_id TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS stock_moves (fact_id TEXT PRIMARY KEY, sku TEXT NOT NULL, qty REAL NOT NULL, ts_us INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS stock_moves_sku ON stock_moves (sku, ts_us);
CREATE TABLE IF NOT EXISTS catalogue (sku TEXT PRIMARY KEY, name TEXT NOT NULL, category TEXT NOT NULL, price REAL NOT NULL);
CREATE TABLE IF NOT EXISTS reconciliation (day TEXT PRIMARY KEY, checked_at REAL NOT NULL, ok INTEGER NOT NULL,
  source TEXT NOT NULL, edge TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


class EdgeStore:
    """One connection per thread: the poller writes, the RPC thread opens its own for reads."""

    def __init__(self, path: str | Path, *, readonly: bool = False) -> None:
        self.path = Path(path)
        # synchronous=FULL: the cursor must survive power loss
        self._db = open_db(self.path, readonly=readonly, schema=SCHEMA, synchronous="FULL")

    def close(self) -> None:
        self._db.close()

    def _transaction(self):
        return transaction(self._db)

    # --- cursors ---------------------------------------------------------------------------------

    def cursor(self, stream: str) -> Cursor:
        row = self._db.execute("SELECT ts_us, pk FROM cursors WHERE stream = ?", (stream,)).fetchone()
        return Cursor(row[0], row[1]) if row else Cursor()

    # --- applying pages (one transaction each) -------------------------------------------------------

    def apply_sales(self, stream: str, txns: Iterable[Txn], quarantined: Iterable[Quarantined], next_cursor: Cursor,
                    *, now: float) -> tuple[list[Txn], int]:
        """Upsert ``txns`` and move the cursor, atomically. Returns (changed txns, duplicates skipped)."""
        changed: list[Txn] = []
        dups = 0
        with self._transaction() as db:
            for t in txns:
                cur = db.execute("SELECT version FROM txn_current WHERE store = ? AND txn_id = ?", (t.store, t.txn_id)).fetchone()
                if cur and cur[0] == t.source_version:
                    dups += 1
                    continue
                day = timeutil.day_of_us(int(t.business_ts * 1e6))
                known = db.execute("SELECT 1 FROM txn_versions WHERE store = ? AND txn_id = ? AND version = ?",
                                   (t.store, t.txn_id, t.source_version)).fetchone()
                if not known:
                    db.execute("INSERT INTO txn_versions VALUES (?,?,?,?,?,?,?,?,?,?)",
                               (t.store, t.txn_id, t.source_version, t.source, t.status, t.business_ts, day, t.shopper_id,
                                t.change_us, now))
                    db.executemany("INSERT INTO txn_lines VALUES (?,?,?,?,?,?,?,?)",
                                   [(t.store, t.txn_id, t.source_version, ln.line, ln.sku, ln.qty, ln.price, ln.type) for ln in t.lines])
                db.execute("INSERT OR REPLACE INTO txn_current VALUES (?,?,?,?,?,?)",
                           (t.store, t.txn_id, t.source_version, t.status, day, t.shopper_id))
                changed.append(t)
            self._quarantine(quarantined, now)
            self._move_cursor(stream, next_cursor)
        return changed, dups

    def apply_stock(self, stream: str, facts: Iterable[StockFact], quarantined: Iterable[Quarantined], next_cursor: Cursor,
                    *, now: float) -> set[str]:
        """Record counts (newest wins) and movements (idempotent by fact id), atomically, and note that the
        stock feed answered at ``now`` (the stock TTL counts from there). Returns touched SKUs."""
        touched: set[str] = set()
        with self._transaction() as db:
            for f in facts:
                if f.kind == "count":
                    n = db.execute(
                        "INSERT INTO stock_counts VALUES (?,?,?,?) ON CONFLICT (sku) DO UPDATE SET "
                        "qty = excluded.qty, ts_us = excluded.ts_us, fact_id = excluded.fact_id "
                        "WHERE excluded.ts_us > stock_counts.ts_us OR "
                        "(excluded.ts_us = stock_counts.ts_us AND excluded.qty != stock_counts.qty)",
                        (f.sku, f.qty, f.ts_us, f.fact_id)).rowcount
                else:
                    n = db.execute("INSERT OR IGNORE INTO stock_moves VALUES (?,?,?,?)", (f.fact_id, f.sku, f.qty, f.ts_us)).rowcount
                if n:
                    touched.add(f.sku)
            self.set_meta("last_stock_ok", repr(now))
            self._quarantine(quarantined, now)
            self._move_cursor(stream, next_cursor)
        return touched

    def _quarantine(self, rows: Iterable[Quarantined], now: float) -> None:
        self._db.executemany("INSERT OR IGNORE INTO quarantine (stream, source_key, reason, raw, at) VALUES (?,?,?,?,?)",
                             [(q.stream, q.source_key, q.reason, q.raw, now) for q in rows])

    def _move_cursor(self, stream: str, candidate: Cursor) -> None:
        new = advance(self.cursor(stream), candidate)
        self._db.execute("INSERT OR REPLACE INTO cursors VALUES (?,?,?)", (stream, new.ts_us, new.pk))

    # --- reference data --------------------------------------------------------------------------------

    def replace_catalogue(self, items: list[CatalogItem], *, now: float) -> None:
        """The POS catalogue as read at ``now``; until the first one, ``catalogue_read_at`` is None."""
        with self._transaction() as db:
            db.execute("DELETE FROM catalogue")
            db.executemany("INSERT OR REPLACE INTO catalogue VALUES (?,?,?,?)", [(i.sku, i.name, i.category, i.price) for i in items])
            self.set_meta("catalogue_read_at", repr(now))

    def catalogue_read_at(self) -> float | None:
        text = self.meta("catalogue_read_at")
        return float(text) if text else None

    def catalogue(self, categories: list[str], limit: int) -> list[m.CatalogEntry]:
        if categories:
            marks = ",".join("?" for _ in categories)
            rows = self._db.execute(f"SELECT sku, name, category, price FROM catalogue WHERE category IN ({marks}) "
                                    "ORDER BY sku LIMIT ?", (*categories, limit))
        else:
            rows = self._db.execute("SELECT sku, name, category, price FROM catalogue ORDER BY sku LIMIT ?", (limit,))
        return [m.CatalogEntry(*r) for r in rows]

    def known_skus(self) -> set[str]:
        return {r[0] for r in self._db.execute("SELECT sku FROM catalogue")}

    def set_meta(self, key: str, value: str) -> None:
        self._db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    def meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    # --- reads ------------------------------------------------------------------------------------------

    def stock_inputs(self, skus: list[str]) -> dict[str, tuple[float | None, int | None, float]]:
        """sku → (count qty, count time, sum of movements after the count)."""
        out: dict[str, tuple[float | None, int | None, float]] = {}
        for sku in skus:
            row = self._db.execute("SELECT qty, ts_us FROM stock_counts WHERE sku = ?", (sku,)).fetchone()
            if row is None:
                out[sku] = (None, None, 0.0)
                continue
            moved = self._db.execute("SELECT COALESCE(SUM(qty), 0) FROM stock_moves WHERE sku = ? AND ts_us > ?", (sku, row[1])).fetchone()[0]
            out[sku] = (row[0], row[1], float(moved))
        return out

    def all_stock_skus(self) -> list[str]:
        return [r[0] for r in self._db.execute("SELECT sku FROM stock_counts ORDER BY sku")]

    def current_txns(self) -> dict[str, tuple[str, tuple[tuple[int, str, float, float], ...]]]:
        """txn_id → (status, lines) as the edge knows them now (for reconciliation and tests)."""
        out: dict[str, list] = {}
        rows = self._db.execute(
            "SELECT c.txn_id, c.status, l.line, l.sku, l.qty, l.price FROM txn_current c JOIN txn_lines l "
            "ON l.store = c.store AND l.txn_id = c.txn_id AND l.version = c.version ORDER BY c.txn_id, l.line")
        for txn_id, status, line, sku, qty, price in rows:
            out.setdefault(txn_id, [status, []])[1].append((line, sku, qty, price))
        return {k: (v[0], tuple(v[1])) for k, v in out.items()}

    def baskets_of(self, shopper_id: str, limit: int) -> list[m.Basket]:
        heads = self._db.execute(
            "SELECT c.store, c.txn_id, c.version, c.status, v.business_ts FROM txn_current c JOIN txn_versions v "
            "ON v.store = c.store AND v.txn_id = c.txn_id AND v.version = c.version "
            "WHERE c.shopper_id = ? AND c.status = 'completed' ORDER BY v.business_ts DESC LIMIT ?", (shopper_id, limit)).fetchall()
        return [self._basket(store, txn_id, version, status, ts, shopper_id) for store, txn_id, version, status, ts in heads]

    def _basket(self, store: str, txn_id: str, version: str, status: str, ts: float, shopper: str | None) -> m.Basket:
        lines = [m.BasketLine(ln, sku, qty, price, typ) for ln, sku, qty, price, typ in self._db.execute(
            "SELECT line, sku, qty, price, type FROM txn_lines WHERE store = ? AND txn_id = ? AND version = ? ORDER BY line",
            (store, txn_id, version))]
        return m.Basket(store, txn_id, ts, status, lines, shopper)

    def day_totals(self, day: str) -> DayTotals:
        row = self._db.execute(
            "SELECT COUNT(DISTINCT c.txn_id), COUNT(*), COALESCE(SUM(l.qty), 0), COALESCE(SUM(l.qty * l.price), 0) "
            "FROM txn_current c JOIN txn_lines l ON l.store = c.store AND l.txn_id = c.txn_id AND l.version = c.version "
            "WHERE c.business_day = ? AND c.status = 'completed'", (day,)).fetchone()
        return DayTotals(day, int(row[0]), int(row[1]), float(row[2]), round(float(row[3]), 2))

    def business_days(self) -> list[str]:
        return [r[0] for r in self._db.execute("SELECT DISTINCT business_day FROM txn_current ORDER BY 1")]

    def record_reconciliation(self, day: str, ok: bool, source: DayTotals, edge: DayTotals, now: float) -> None:
        import msgspec

        self._db.execute("INSERT OR REPLACE INTO reconciliation VALUES (?,?,?,?,?)",
                         (day, now, int(ok), msgspec.json.encode(source).decode(), msgspec.json.encode(edge).decode()))

    def reconciled_days(self) -> dict[str, tuple[bool, float]]:
        """day → (totals matched, when checked)."""
        return {d: (bool(ok), at) for d, ok, at in self._db.execute("SELECT day, ok, checked_at FROM reconciliation")}

    def counts(self) -> dict[str, float]:
        q = self._db.execute
        return {
            "txns": q("SELECT COUNT(*) FROM txn_current").fetchone()[0],
            "txn_versions": q("SELECT COUNT(*) FROM txn_versions").fetchone()[0],
            "quarantined": q("SELECT COUNT(*) FROM quarantine").fetchone()[0],
            "reconcile_mismatch_days": q("SELECT COUNT(*) FROM reconciliation WHERE ok = 0").fetchone()[0],
        }

    def quarantined_count(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM quarantine").fetchone()[0])

    def newest_source_us(self) -> int | None:
        """The newest source timestamp committed in any stream's cursor (None before the first commit)."""
        row = self._db.execute("SELECT MAX(ts_us) FROM cursors WHERE ts_us > 0").fetchone()
        return None if row is None or row[0] is None else int(row[0])

    def quarantined(self) -> list[tuple[str, str, str]]:
        return [tuple(r) for r in self._db.execute("SELECT stream, source_key, reason FROM quarantine ORDER BY id")]



"""Generic SQL adapter for OSPOS-shaped POS/ERP databases: SQLite and PostgreSQL.

Streams: ``sales`` (ospos_sales + items, keyset on (updated_at, sale_id)), ``counts``
(ospos_item_quantities, keyset on (updated_at, item_id)) and ``moves`` (ospos_inventory, keyset on
(trans_date, trans_id)). Columns are named explicitly, so an added column is harmless; a missing
one is schema drift and fails loudly (``UpstreamFatal`` naming the column).

Change signal instead of blind polling: PostgreSQL LISTEN on the channel the schema's triggers
notify; SQLite ``PRAGMA data_version``, which changes when another connection commits.
Driver exceptions are translated here: connection problems → ``UpstreamRetryable`` (and the
connection is dropped, to be reopened on the next call), SQL errors → ``UpstreamFatal``.
"""
from __future__ import annotations

import logging
import sqlite3
import threading
from typing import Any, Callable
from urllib.parse import quote, urlparse

from ...core import timeutil
from ...core.errors import ConfigError, UpstreamFatal, UpstreamRetryable
from . import ospos
from .api import CatalogItem, Cursor, DayTotals, Page, StockFact

log = logging.getLogger(__name__)

_SALES = (
    "SELECT sale_id, sale_time, customer_id, sale_status, sale_type, updated_at FROM ospos_sales "
    "WHERE updated_at > {p} OR (updated_at = {p} AND sale_id > {p}) ORDER BY updated_at, sale_id LIMIT {p}"
)
_ITEMS = (
    "SELECT sale_id, item_id, line, quantity_purchased, item_unit_price FROM ospos_sales_items "
    "WHERE sale_id IN ({ids}) ORDER BY sale_id, line"
)
_COUNTS = (
    "SELECT item_id, location_id, quantity, updated_at FROM ospos_item_quantities "
    "WHERE location_id = {p} AND (updated_at > {p} OR (updated_at = {p} AND item_id > {p})) "
    "ORDER BY updated_at, item_id LIMIT {p}"
)
_MOVES = (
    "SELECT trans_id, trans_items, trans_inventory, trans_date FROM ospos_inventory "
    "WHERE trans_location = {p} AND (trans_date > {p} OR (trans_date = {p} AND trans_id > {p})) "
    "ORDER BY trans_date, trans_id LIMIT {p}"
)
_CATALOGUE = "SELECT item_id, name, category, unit_price FROM ospos_items WHERE deleted = 0"
_TOTALS = (
    "SELECT COUNT(DISTINCT s.sale_id), COUNT(*), COALESCE(SUM(i.quantity_purchased), 0), "
    "COALESCE(SUM(i.quantity_purchased * i.item_unit_price), 0) "
    "FROM ospos_sales s JOIN ospos_sales_items i ON i.sale_id = s.sale_id "
    "WHERE s.sale_status = 0 AND s.sale_time >= {p} AND s.sale_time < {p}"
)


class SqlAdapter:
    """See module docstring. Not thread-safe: one poller thread owns it."""

    streams = ("sales", "counts", "moves")

    def __init__(self, name: str, store: str, url: str, *, location_id: int = 1, connect_timeout_s: float = 5.0,
                 statement_timeout_ms: int = 10_000, notify_channel: str = "endcap_pos", stop: threading.Event | None = None,
                 change_check_s: float = 0.002) -> None:
        self.name = name
        self.store = store
        self._url = url
        self._location = location_id
        self._timeout = connect_timeout_s
        self._stmt_timeout_ms = statement_timeout_ms
        self._channel = notify_channel
        self._stop = stop or threading.Event()
        self._check_s = change_check_s
        self._kind = dialect_of(url)
        self._conn: Any = None
        self._listen: Any = None
        self._data_version: int | None = None

    # --- connection management ---------------------------------------------------------------

    def _connect(self) -> Any:
        if self._conn is not None:
            return self._conn
        try:
            if self._kind == "sqlite":
                path = sqlite_path(self._url)
                conn = sqlite3.connect(f"file:{quote(path)}?mode=ro", uri=True, timeout=self._timeout, isolation_level=None,
                                       check_same_thread=False)
                conn.execute(f"PRAGMA busy_timeout = {int(self._timeout * 1000)}")
                conn.execute("SELECT 1 FROM ospos_sales LIMIT 0")
            else:
                import psycopg  # platform driver: imported inside its adapter

                conn = psycopg.connect(self._url, autocommit=True, connect_timeout=max(1, int(self._timeout)))
                conn.execute(f"SET statement_timeout = {int(self._stmt_timeout_ms)}")
        except Exception as e:  # translate any driver error at the boundary
            raise self._translate(e, "connect") from e
        self._conn = conn
        return conn

    def _drop(self) -> None:
        for c in (self._conn, self._listen):
            if c is not None:
                try:
                    c.close()
                except Exception as e:  # closing a broken connection may fail again; nothing to save
                    log.debug("closing %s connection: %s", self.name, e)
        self._conn = self._listen = None
        self._data_version = None

    def close(self) -> None:
        self._drop()

    def _translate(self, e: Exception, what: str) -> Exception:
        text = f"{self.name}: {what}: {type(e).__name__}: {e}".strip()
        if self._kind == "sqlite":
            if isinstance(e, sqlite3.OperationalError) and ("no such column" in str(e) or "no such table" in str(e)):
                self._drop()
                return UpstreamFatal(f"{text} (schema drift?)", code="schema_drift")
            if isinstance(e, sqlite3.Error):
                self._drop()
                return UpstreamRetryable(text, code="unreachable")
            return e
        import psycopg

        if isinstance(e, psycopg.errors.UndefinedColumn) or isinstance(e, psycopg.errors.UndefinedTable):
            return UpstreamFatal(f"{text} (schema drift?)", code="schema_drift")
        if isinstance(e, (psycopg.OperationalError, psycopg.errors.QueryCanceled)):
            self._drop()
            return UpstreamRetryable(text, code="unreachable")
        if isinstance(e, psycopg.Error):
            self._drop()
            return UpstreamFatal(text)
        return e

    def _query(self, sql: str, params: tuple[Any, ...], what: str) -> list[tuple[Any, ...]]:
        sql = sql.replace("{p}", "?" if self._kind == "sqlite" else "%s")
        conn = self._connect()
        try:
            return list(conn.execute(sql, params).fetchall())
        except Exception as e:
            raise self._translate(e, what) from e

    def _ts(self, us: int) -> Any:
        return timeutil.text_from_us(us) if self._kind == "sqlite" else timeutil.datetime_from_us(us)

    # --- streams -------------------------------------------------------------------------------

    def poll(self, stream: str, cursor: Cursor, limit: int) -> Page:
        if stream == "sales":
            return self._poll_sales(cursor, limit)
        if stream == "counts":
            return self._poll_stock(_COUNTS, "counts", cursor, limit, self._count_fact)
        if stream == "moves":
            return self._poll_stock(_MOVES, "moves", cursor, limit, self._move_fact)
        raise ValueError(f"unknown stream {stream!r}")

    def _poll_sales(self, cursor: Cursor, limit: int) -> Page:
        ts, pk = self._ts(cursor.ts_us), _int_pk(cursor.pk)
        rows = self._query(_SALES, (ts, ts, pk, limit), "read ospos_sales")
        if not rows:
            return Page([], [], cursor, False)
        ids = [r[0] for r in rows]
        marks = ",".join("?" if self._kind == "sqlite" else "%s" for _ in ids)
        items: dict[Any, list[dict[str, Any]]] = {}
        for sale_id, item_id, line, qty, price in self._query(_ITEMS.replace("{ids}", marks), tuple(ids), "read ospos_sales_items"):
            items.setdefault(sale_id, []).append(
                {"item_id": item_id, "line": line, "quantity_purchased": qty, "item_unit_price": price})
        events, bad = [], []
        for sale_id, sale_time, customer_id, status, sale_type, updated_at in rows:
            sale = {"sale_id": sale_id, "sale_time": sale_time, "customer_id": customer_id, "sale_status": status,
                    "sale_type": sale_type, "updated_at": updated_at}
            try:
                events.append(ospos.sale_to_txn(self.name, self.store, sale, items.get(sale_id, [])))
            except ospos.RowError as e:
                bad.append(ospos.quarantine("sales", sale_id, str(e), {"sale": sale, "items": items.get(sale_id, [])}))
        last = rows[-1]
        nxt = Cursor(_last_us(last[5], cursor), str(last[0]))
        return Page(events, bad, nxt, len(rows) == limit)

    def _poll_stock(self, sql: str, stream: str, cursor: Cursor, limit: int, to_fact: Callable[[tuple], StockFact]) -> Page:
        ts, pk = self._ts(cursor.ts_us), _int_pk(cursor.pk)
        rows = self._query(sql, (self._location, ts, ts, pk, limit), f"read {stream}")
        if not rows:
            return Page([], [], cursor, False)
        events, bad = [], []
        for r in rows:
            try:
                events.append(to_fact(r))
            except ospos.RowError as e:
                bad.append(ospos.quarantine(stream, r[0], str(e), r))
        last = rows[-1]
        return Page(events, bad, Cursor(_last_us(last[-1], cursor), str(last[0])), len(rows) == limit)

    @staticmethod
    def _count_fact(r: tuple) -> StockFact:
        item_id, _loc, qty, updated_at = r
        us = ospos.to_us(updated_at, "updated_at")
        # A count is identified by item and time: a recount of the same item is a new fact.
        return StockFact("count", f"{item_id}@{us}", str(item_id), ospos._number(qty, "quantity"), us)

    @staticmethod
    def _move_fact(r: tuple) -> StockFact:
        trans_id, item_id, qty, trans_date = r
        if item_id is None:
            raise ospos.RowError("trans_items is missing")
        return StockFact("delta", str(trans_id), str(item_id), ospos._number(qty, "trans_inventory"),
                         ospos.to_us(trans_date, "trans_date"))

    # --- reference data and reconciliation ------------------------------------------------------

    def catalogue(self) -> list[CatalogItem]:
        out = []
        for item_id, name, category, price in self._query(_CATALOGUE, (), "read ospos_items"):
            try:
                out.append(CatalogItem(str(item_id), str(name), str(category or ""), ospos._number(price, "unit_price")))
            except ospos.RowError as e:
                log.warning("%s: catalogue item %s skipped: %s", self.name, item_id, e)
        return out

    def day_totals(self, day: str) -> DayTotals:
        start, end = timeutil.day_bounds_us(day)
        txns, lines, qty, value = self._query(_TOTALS, (self._ts(start), self._ts(end)), "control totals")[0]
        return DayTotals(day, int(txns), int(lines), float(qty), round(float(value), 2))

    # --- change signal --------------------------------------------------------------------------

    def wait_for_change(self, timeout_s: float) -> bool:
        try:
            if self._kind == "sqlite":
                return self._wait_sqlite(timeout_s)
            return self._wait_postgres(timeout_s)
        except (UpstreamRetryable, UpstreamFatal):
            raise
        except Exception as e:
            raise self._translate(e, "wait for change") from e

    def _wait_sqlite(self, timeout_s: float) -> bool:
        conn = self._connect()
        if self._data_version is None:
            self._data_version = conn.execute("PRAGMA data_version").fetchone()[0]
        waited = 0.0
        while True:
            v = conn.execute("PRAGMA data_version").fetchone()[0]
            if v != self._data_version:
                self._data_version = v
                return True
            if waited >= timeout_s or self._stop.wait(self._check_s):
                return False
            waited += self._check_s

    def _wait_postgres(self, timeout_s: float) -> bool:
        import psycopg

        if self._listen is None:
            self._listen = psycopg.connect(self._url, autocommit=True, connect_timeout=max(1, int(self._timeout)))
            self._listen.execute(f"LISTEN {psycopg.sql.Identifier(self._channel).as_string(self._listen)}")
        got = False
        for _ in self._listen.notifies(timeout=timeout_s, stop_after=1):
            got = True
        if got:  # drain the burst so one poll answers many notifications
            for _ in self._listen.notifies(timeout=0):
                pass
        return got


def _int_pk(pk: str) -> int:
    return int(pk) if pk else -(2**62)


def _last_us(value: Any, cursor: Cursor) -> int:
    try:
        return ospos.to_us(value, "change time")
    except ospos.RowError:
        return cursor.ts_us


def dialect_of(url: str) -> str:
    """'sqlite' or 'postgresql' from a source URL. Raises ConfigError for anything else."""
    scheme = urlparse(url).scheme
    if scheme == "sqlite":
        return "sqlite"
    if scheme in ("postgresql", "postgres") or (not scheme and "=" in url):
        return "postgresql"
    raise ConfigError(f"pos.sql.url: {url!r} is neither sqlite:///PATH nor a PostgreSQL URL/conninfo",
                      [f"pos.sql.url: unsupported scheme {scheme or '(none)'!r}; use sqlite:///PATH or postgresql://..."])


def sqlite_path(url: str) -> str:
    """The absolute file path of ``sqlite:///abs/path.db`` (extra leading slashes tolerated)."""
    p = urlparse(url)
    path = "/" + (p.netloc + p.path).lstrip("/")
    return path

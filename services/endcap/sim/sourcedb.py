"""A thin connection to the simulated POS database (SQLite file or PostgreSQL), POS side only.

Responsibility: open a source by URL, create or reset the OSPOS-shaped schema shipped next to this
module, run statements written once with ``?`` placeholders in either database's paramstyle, and convert
source timestamps.

Invariants:
- source times are UTC; in SQLite they are TEXT formatted exactly ``'%Y-%m-%d %H:%M:%S.%f'`` (always six
  fractional digits, so text order is time order), in PostgreSQL ``timestamp(6)`` values (naive datetimes);
  inside the simulator they are integer microseconds since the epoch (``to_db`` / ``from_db`` convert).
- nothing is visible to readers until ``commit()``; SQLite runs in WAL mode so the edge can read while
  the simulator writes, with a ``busy_timeout`` instead of instant ``database is locked`` errors.
- vendor exceptions leave this module as ``SimError`` naming the URL (never its password) and the reason.
"""
from __future__ import annotations

import logging
import re
import sqlite3
from datetime import datetime
from importlib import resources
from typing import Any, Iterable, Sequence

from endcap.core import timeutil
from endcap.sim.errors import SimError

log = logging.getLogger(__name__)

BUSY_TIMEOUT_MS = 10_000
TABLES = ("ospos_sales_items", "ospos_sales", "ospos_inventory", "ospos_item_quantities", "ospos_items")


def redact(url: str) -> str:
    """``url`` with any password blanked, for messages and logs."""
    url = re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", url)
    return re.sub(r"(password\s*=\s*)\S+", r"\1***", url)


def one_line(e: BaseException) -> str:
    """A vendor error as one line (libpq's messages span several)."""
    return " ".join(str(e).split()) or type(e).__name__


# Conversions shared with the edge (one definition of the POS schema's time encoding).
us_to_text = timeutil.text_from_us
us_to_datetime = timeutil.datetime_from_us
datetime_to_us = timeutil.us_from_datetime


def text_to_us(text: str) -> int:
    """Parse a SQLite source time, insisting on the schema's exact form (text order = time order)."""
    if len(text) != 26 or text[10] != " ":
        raise ValueError(f"source time {text!r}: not 'YYYY-MM-DD HH:MM:SS.ffffff'")
    return timeutil.us_from_text(text)


class Source:
    """One open connection to the POS database. Not thread-safe: callers serialise access."""

    def __init__(self, url: str, conn: Any, kind: str) -> None:
        self.url = url
        self.kind = kind  # "sqlite" | "postgres"
        self._conn = conn
        self._vendor_errors: tuple[type[BaseException], ...] = (sqlite3.Error,)
        if kind == "postgres":
            import psycopg

            self._vendor_errors = (psycopg.Error,)

    def __repr__(self) -> str:
        return f"Source({redact(self.url)!r})"

    # Time conversion ------------------------------------------------------------------------------
    def to_db(self, us: int) -> Any:
        return us_to_text(us) if self.kind == "sqlite" else us_to_datetime(us)

    def from_db(self, value: Any) -> int:
        if isinstance(value, datetime):
            return datetime_to_us(value)
        return text_to_us(value)

    # Statements -------------------------------------------------------------------------------------
    def _sql(self, sql: str) -> str:
        return sql if self.kind == "sqlite" else sql.replace("?", "%s")

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        try:
            self._conn.execute(self._sql(sql), tuple(params))
        except self._vendor_errors as e:
            raise SimError(f"{redact(self.url)}: {one_line(e)}") from e

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        rows = [tuple(r) for r in rows]
        if not rows:
            return
        try:
            if self.kind == "sqlite":
                self._conn.executemany(sql, rows)
            else:
                with self._conn.cursor() as cur:
                    cur.executemany(self._sql(sql), rows)
        except self._vendor_errors as e:
            raise SimError(f"{redact(self.url)}: {one_line(e)}") from e

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        try:
            if self.kind == "sqlite":
                return self._conn.execute(sql, tuple(params)).fetchall()
            with self._conn.cursor() as cur:
                cur.execute(self._sql(sql), tuple(params))
                return cur.fetchall()
        except self._vendor_errors as e:
            raise SimError(f"{redact(self.url)}: {one_line(e)}") from e

    def commit(self) -> None:
        try:
            self._conn.commit()
        except self._vendor_errors as e:
            raise SimError(f"{redact(self.url)}: commit failed: {one_line(e)}") from e

    def rollback(self) -> None:
        try:
            self._conn.rollback()
        except self._vendor_errors as e:
            log.warning("%s: rollback failed: %s", redact(self.url), e)

    def close(self) -> None:
        try:
            self._conn.close()
        except self._vendor_errors as e:
            log.warning("%s: close failed: %s", redact(self.url), e)

    # Schema -----------------------------------------------------------------------------------------
    def create_schema(self, reset: bool = False) -> None:
        """Create the OSPOS tables if missing; ``reset`` drops them (and their rows) first. Commits."""
        name = "schema_sqlite.sql" if self.kind == "sqlite" else "schema_postgres.sql"
        script = resources.files("endcap.sim").joinpath(name).read_text(encoding="utf-8")
        try:
            if self.kind == "sqlite":
                if reset:
                    for t in TABLES:
                        self._conn.execute(f"DROP TABLE IF EXISTS {t}")
                self._conn.executescript(script)  # commits first, runs the script, no open transaction after
            else:
                if reset:
                    self._conn.execute("DROP TABLE IF EXISTS " + ", ".join(TABLES) + " CASCADE")
                self._conn.execute(script)  # psycopg runs a parameterless multi-statement script as is
                self._conn.commit()
        except self._vendor_errors as e:
            raise SimError(f"{redact(self.url)}: cannot create the POS schema: {one_line(e)}") from e

    def has_column(self, table: str, column: str) -> bool:
        if self.kind == "sqlite":
            return any(r[1] == column for r in self.query(f"PRAGMA table_info({table})"))
        rows = self.query(
            "SELECT 1 FROM information_schema.columns WHERE table_schema = current_schema()"
            " AND table_name = ? AND column_name = ?",
            (table, column),
        )
        return bool(rows)


def open_source(url: str) -> Source:
    """Open ``sqlite:///ABS/PATH.db`` or a PostgreSQL URL/conninfo (``postgresql://…``, ``host=… dbname=…``).

    Raises:
        SimError: an unsupported URL, or a database that cannot be opened (message names the URL).
    """
    if url.startswith("sqlite:"):
        if not url.startswith("sqlite:///"):
            raise SimError(f"{url}: a SQLite source is sqlite:///ABSOLUTE/PATH.db")
        path = url[len("sqlite://"):]
        try:
            conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000, check_same_thread=False)
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            conn.execute("PRAGMA synchronous = NORMAL")  # WAL + NORMAL is durable across a process crash
        except sqlite3.Error as e:
            raise SimError(f"{url}: cannot open the SQLite database: {one_line(e)}") from e
        if mode.lower() != "wal":
            log.warning("%s: journal_mode is %s, not wal", url, mode)
        return Source(url, conn, "sqlite")
    if url.startswith(("postgresql://", "postgres://")) or "=" in url:
        import psycopg

        try:
            conn = psycopg.connect(url, autocommit=False, connect_timeout=10)
        except psycopg.Error as e:
            raise SimError(f"{redact(url)}: cannot connect to PostgreSQL: {one_line(e)}") from e
        return Source(url, conn, "postgres")
    raise SimError(f"{redact(url)}: unsupported source (want sqlite:///ABS/PATH.db or postgresql://…)")

"""The one interface every POS/ERP adapter implements, and the canonical events it returns.

Canonical transaction events follow ARTS POSLog: store, transaction id, line, SKU, signed quantity,
unit price, line type (sale | return | void), business time, source version. A ``Txn`` groups the
lines of one transaction as the source shows it *now*; a changed transaction (suspended → completed,
completed → cancelled) arrives again with another ``source_version`` and becomes a new version at the
edge, never an update in place or a delete.

Reads are at-least-once: ``poll(stream, cursor)`` returns everything changed after ``cursor`` (and the caller
re-reads a lookback window for late rows); the edge makes the effect exactly-once with idempotent
upserts keyed by (store, txn_id, source_version) committed together with the next cursor.

Adapters raise ``UpstreamRetryable`` (outage, timeout, 429 with ``retry_after``) or ``UpstreamFatal``
(schema drift, bad credentials); rows they cannot turn into events come back as ``Quarantined``
with a reason, and never stop the stream.
"""
from __future__ import annotations

from typing import Optional, Protocol

import msgspec

LINE_TYPES = ("sale", "return", "void")
TXN_STATUSES = ("completed", "suspended", "cancelled")


class Cursor(msgspec.Struct, frozen=True):
    """Compound position in a source's change order: (change time, primary key).

    ``ts_us`` is the source's change time in integer microseconds since the epoch (floats lose
    microseconds at today's epoch); ``pk`` is the source's primary key as text, opaque to the edge.
    The start of time is ``Cursor()``.
    """

    ts_us: int = 0
    pk: str = ""


class TxnLine(msgspec.Struct, frozen=True):
    line: int
    sku: str
    qty: float  # signed: negative for returns
    price: float  # unit price
    type: str  # sale | return | void


class Txn(msgspec.Struct, frozen=True):
    source: str  # adapter instance name, e.g. "ospos"
    store: str
    txn_id: str
    business_ts: float  # epoch seconds of the sale in the source's clock
    status: str  # completed | suspended | cancelled
    source_version: str
    change_us: int  # the source's change time (the cursor column), microseconds
    lines: list[TxnLine]
    shopper_id: Optional[str] = None


class StockFact(msgspec.Struct, frozen=True):
    """``kind="count"``: an absolute count at ``ts``; ``kind="delta"``: a movement of ``qty`` at ``ts``."""

    kind: str
    fact_id: str  # idempotency key (source primary key)
    sku: str
    qty: float
    ts_us: int  # source time of the count or movement, microseconds


class CatalogItem(msgspec.Struct, frozen=True):
    sku: str
    name: str
    category: str
    price: float


class Quarantined(msgspec.Struct, frozen=True):
    stream: str  # sales | stock
    source_key: str
    reason: str
    raw: str  # the offending row, as text, for the technician


class Page(msgspec.Struct, frozen=True):
    """One read of one stream: events (``Txn`` for sales, ``StockFact`` for stock), rows that could not
    become events, the cursor after the last row read, and whether another page is ready right away."""

    events: list  # list[Txn] | list[StockFact]
    quarantined: list[Quarantined]
    next_cursor: Cursor
    more: bool


class DayTotals(msgspec.Struct, frozen=True):
    """Control totals of completed transactions for one business day (UTC date, ISO)."""

    day: str
    txns: int
    lines: int
    qty: float
    value: float


class PosAdapter(Protocol):
    """A source of sales and stock. ``streams`` names its change streams; each has its own cursor.

    Stream names: ``sales`` yields ``Txn``; any other stream (e.g. ``counts``, ``moves``) yields
    ``StockFact``. All methods raise ``UpstreamRetryable`` or ``UpstreamFatal`` on failure.
    """

    name: str
    streams: tuple[str, ...]

    def poll(self, stream: str, cursor: Cursor, limit: int) -> Page: ...

    def catalogue(self) -> list[CatalogItem]: ...

    def day_totals(self, day: str) -> DayTotals:
        """The source's own control totals of completed sales for ``day`` (UTC date, ISO)."""
        ...

    def wait_for_change(self, timeout_s: float) -> bool:
        """Block up to ``timeout_s`` for a sign that the source changed (LISTEN/NOTIFY, SQLite data_version).

        True if a change was signalled; False on timeout. Sources without a signal just wait.
        """
        ...

    def close(self) -> None: ...

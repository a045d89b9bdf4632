"""REST adapter for Square-style POS APIs (Orders, Inventory, Catalog; Connect v2 shapes).

Streams: ``sales`` (``POST /v2/orders/search``, sorted by ``updated_at``) and ``stock``
(``POST /v2/inventory/changes/batch-retrieve``: counts and adjustments). Mapping is in ``square``.

Keyset over a server cursor: the API's ``cursor`` pages ONE query, so every ``poll`` starts a fresh
query at the edge cursor's time (inclusive) and drops what is not strictly after the edge cursor
(``square.is_after``). Orders come sorted by ``updated_at`` only, ties in any order, so a page is cut
at a *complete* time group: orders dated at the newest time seen are held back (re-read next poll)
unless the query ended; when a whole page is one group, the server cursor is followed within the
poll until the group is complete. Inventory changes are filtered by ``created_at`` but sorted by
``occurred_at``: the cursor moves to the newest ``created_at`` only when the query ended, otherwise
to the start of the last ``occurred_at`` seen (what is still unread happened no earlier, and was
recorded no earlier than it happened; a POS clock ahead by more than the lookback breaks this);
facts are idempotent, so re-reading them is harmless.

Errors are translated here, never retried here (the poller owns backoff): 429/503/5xx and network
failures → ``UpstreamRetryable`` (``retry_after`` from the header); 401/403 → ``UpstreamFatal(auth)``;
other 4xx → ``UpstreamFatal``; a body that is not the expected JSON → ``UpstreamFatal(schema_drift)``.
The token comes from the environment, travels only in the Authorization header and is never logged.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Optional

import requests
from requests.auth import AuthBase

from ...core import timeutil
from ...core.errors import ConfigError, UpstreamFatal, UpstreamRetryable
from . import square
from .api import CatalogItem, Cursor, DayTotals, Page, Quarantined, StockFact, Txn

if TYPE_CHECKING:
    from ..config import PosConfig

log = logging.getLogger(__name__)

SALE_STATES = ["OPEN", "COMPLETED", "CANCELED"]  # DRAFT orders are not sales yet
RETRYABLE_STATUS = {408, 429, 503}


class _Bearer(AuthBase):
    """Sets the token per request; as ``session.auth`` it also keeps requests from using ~/.netrc instead."""

    def __init__(self, token: str) -> None:
        self._token = token

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        r.headers["Authorization"] = f"Bearer {self._token}"
        return r

    def __repr__(self) -> str:  # never show the token in a traceback or a debugger
        return "_Bearer(***)"


class RestAdapter:
    """See module docstring. Not thread-safe: one poller thread owns it."""

    streams = ("sales", "stock")

    def __init__(self, name: str, store: str, base_url: str, location_id: str, token: str, *, timeout_s: float = 10.0,
                 page_limit: int = 500, api_version: str = "2024-10-17", stop: threading.Event | None = None) -> None:
        self.name = name
        self.store = store
        self._base = base_url.rstrip("/")
        self._location = location_id
        self._timeout = timeout_s
        self._page_limit = page_limit
        self._stop = stop or threading.Event()
        self._session = requests.Session()
        self._session.auth = _Bearer(token)
        self._session.headers.update({"Accept": "application/json", "Square-Version": api_version})

    @classmethod
    def from_config(cls, cfg: PosConfig, *, stop: threading.Event | None = None) -> RestAdapter:
        """Raises ConfigError when the token's environment variable is unset or empty."""
        r = cfg.rest
        assert r is not None  # PosConfig guarantees [pos.rest] when adapter = "rest"
        token = os.environ.get(r.token_env, "")
        if not token:
            raise ConfigError(f"pos.rest.token_env: environment variable {r.token_env} is not set",
                              [f"pos.rest.token_env: environment variable {r.token_env} is not set or empty"])
        return cls(cfg.source_name, cfg.store_id, r.base_url, r.location_id, token, timeout_s=r.timeout_s,
                   page_limit=r.page_limit, api_version=r.api_version, stop=stop)

    def close(self) -> None:
        self._session.close()

    # --- HTTP ------------------------------------------------------------------------------------------

    def _call(self, method: str, path: str, what: str, *, body: Any = None, params: Any = None) -> dict[str, Any]:
        url = self._base + path
        try:
            r = self._session.request(method, url, json=body, params=params, timeout=self._timeout)
        except (requests.Timeout, requests.ConnectionError, requests.exceptions.ChunkedEncodingError) as e:
            if isinstance(e, requests.exceptions.SSLError):
                raise UpstreamFatal(f"{self.name}: {what}: TLS failure talking to {self._base}: {e}", code="tls") from e
            raise UpstreamRetryable(f"{self.name}: {what}: {self._base} unreachable: {type(e).__name__}",
                                    code="unreachable") from e
        except requests.RequestException as e:  # bad URL, redirect loop: retrying will not help
            raise UpstreamFatal(f"{self.name}: {what}: {type(e).__name__}: {e}") from e
        with r:
            status = r.status_code
            if status >= 400:
                raise self._http_error(r, what)
            try:
                data = r.json()
            except ValueError as e:  # requests' JSONDecodeError is a ValueError
                raise UpstreamFatal(f"{self.name}: {what}: HTTP {status} body is not JSON (schema drift?)",
                                    code="schema_drift") from e
        if not isinstance(data, dict):
            raise UpstreamFatal(f"{self.name}: {what}: response is {type(data).__name__}, not an object", code="schema_drift")
        return data

    def _http_error(self, r: requests.Response, what: str) -> Exception:
        status = r.status_code
        text = f"{self.name}: {what}: HTTP {status}{_square_error(r)}"
        if status in RETRYABLE_STATUS or status >= 500:
            retry_after = square.parse_retry_after(r.headers.get("Retry-After"), time.time())
            code = "rate_limited" if status == 429 else "unavailable" if status == 503 else f"http_{status}"
            return UpstreamRetryable(text, retry_after=retry_after, code=code)
        if status in (401, 403):
            return UpstreamFatal(text, code="auth")
        return UpstreamFatal(text, code=f"http_{status}")

    def _pages(self, method: str, path: str, what: str, key: str, *, body: dict[str, Any] | None = None,
               params: dict[str, Any] | None = None, cursor: Optional[str] = None) -> tuple[list[Any], Optional[str]]:
        """One page: (the ``key`` list, the server's next cursor or None)."""
        if cursor is not None:
            if body is not None:
                body = dict(body, cursor=cursor)
            else:
                params = dict(params or {}, cursor=cursor)
        data = self._call(method, path, what, body=body, params=params)
        rows = data.get(key, [])
        nxt = data.get("cursor")
        if not isinstance(rows, list) or (nxt is not None and not isinstance(nxt, str)):
            raise UpstreamFatal(f"{self.name}: {what}: '{key}' or 'cursor' has the wrong type (schema drift?)",
                                code="schema_drift")
        return rows, nxt or None

    # --- streams ---------------------------------------------------------------------------------------

    def poll(self, stream: str, cursor: Cursor, limit: int) -> Page:
        if stream == "sales":
            return self._poll_sales(cursor, max(1, min(limit, self._page_limit)))
        if stream == "stock":
            return self._poll_stock(cursor, max(1, min(limit, self._page_limit)))
        raise ValueError(f"unknown stream {stream!r}")

    def _orders_query(self, field: str, start_us: int, end_us: Optional[int], states: list[str], limit: int) -> dict:
        span = {"start_at": square.rfc3339(start_us)}
        if end_us is not None:
            span["end_at"] = square.rfc3339(end_us)
        # Square requires the sort field to be the date filter's field
        return {"location_ids": [self._location], "limit": limit,
                "query": {"filter": {"date_time_filter": {field.lower(): span}, "state_filter": {"states": states}},
                          "sort": {"sort_field": field, "sort_order": "ASC"}}}

    def _poll_sales(self, cursor: Cursor, limit: int) -> Page:
        # one more than wanted: the newest time group is held back, so a page of unique times still yields `limit`
        body = self._orders_query("UPDATED_AT", cursor.ts_us, None, SALE_STATES, min(limit + 1, self._page_limit))
        fresh: list[tuple[int, str, dict[str, Any]]] = []
        bad: list[Quarantined] = []
        newest: Optional[int] = None
        server_cursor: Optional[str] = None
        while True:
            orders, server_cursor = self._pages("POST", "/v2/orders/search", "search orders", "orders",
                                                body=body, cursor=server_cursor)
            for o in orders:
                if not isinstance(o, dict):
                    raise UpstreamFatal(f"{self.name}: search orders: an order is not an object", code="schema_drift")
                try:
                    ts, oid = square.order_key(o)
                except square.RowError as e:
                    bad.append(square.quarantine("sales", o.get("id") or "?", str(e), o))
                    continue
                if newest is not None and ts < newest:  # the cut below relies on the sort; refuse to guess
                    raise UpstreamFatal(f"{self.name}: search orders: orders are not sorted by updated_at",
                                        code="schema_drift")
                newest = ts
                if square.is_after(ts, oid, cursor):
                    fresh.append((ts, oid, o))
            if server_cursor is None or any(ts < newest for ts, _, _ in fresh):
                break
        fresh.sort(key=lambda e: square.sort_key(e[0], e[1]))
        more = server_cursor is not None
        if more:  # the newest time group may continue on the next server page: leave it for the next poll
            fresh = [e for e in fresh if e[0] < newest]
        events: list[Txn] = []
        for _, oid, o in fresh:
            try:
                events.append(square.order_to_txn(self.name, self.store, o))
            except square.RowError as e:
                bad.append(square.quarantine("sales", oid, str(e), o))
        nxt = Cursor(fresh[-1][0], fresh[-1][1]) if fresh else cursor
        return Page(events, bad, nxt, more)

    def _poll_stock(self, cursor: Cursor, limit: int) -> Page:
        # updated_after is "after": ask from 1 µs earlier so the cursor's own microsecond is included
        body = {"location_ids": [self._location], "types": ["PHYSICAL_COUNT", "ADJUSTMENT"],
                "updated_after": square.rfc3339(max(0, cursor.ts_us - 1)), "limit": limit}
        facts: list[StockFact] = []
        bad: list[Quarantined] = []
        newest: Optional[Cursor] = None
        server_cursor: Optional[str] = None
        fresh = 0
        while True:
            changes, server_cursor = self._pages("POST", "/v2/inventory/changes/batch-retrieve",
                                                 "retrieve inventory changes", "changes", body=body, cursor=server_cursor)
            last_occurred = None
            for ch in changes:
                if not isinstance(ch, dict):
                    raise UpstreamFatal(f"{self.name}: inventory changes: a change is not an object", code="schema_drift")
                try:
                    created, cid, last_occurred = square.change_key(ch)
                except square.RowError as e:
                    bad.append(square.quarantine("stock", "?", str(e), ch))
                    continue
                if not square.is_after(created, cid, cursor):
                    continue
                fresh += 1
                if newest is None or square.sort_key(created, cid) > square.sort_key(newest.ts_us, newest.pk):
                    newest = Cursor(created, cid)
                try:
                    fact = square.change_to_fact(ch)
                except square.RowError as e:
                    bad.append(square.quarantine("stock", cid, str(e), ch))
                    continue
                if fact is not None:
                    facts.append(fact)
            if server_cursor is None:
                return Page(facts, bad, newest or cursor, False)
            if fresh >= limit and last_occurred is not None and last_occurred > cursor.ts_us:
                # unread changes happened at or after last_occurred, so were recorded no earlier:
                # all before it was read ("" = all of that microsecond is still to read)
                return Page(facts, bad, Cursor(last_occurred, ""), True)

    # --- reference data and reconciliation -------------------------------------------------------------

    def catalogue(self) -> list[CatalogItem]:
        objects: list[Any] = []
        params = {"types": "ITEM_VARIATION,ITEM,CATEGORY"}
        server_cursor: Optional[str] = None
        while True:
            page, server_cursor = self._pages("GET", "/v2/catalog/list", "list catalog", "objects",
                                              params=params, cursor=server_cursor)
            objects += page
            if server_cursor is None:
                break
        items, skipped = square.catalogue(objects)
        for reason in skipped:
            log.warning("%s: catalogue item skipped: %s", self.name, reason)
        return items

    def day_totals(self, day: str) -> DayTotals:
        """Completed orders *created* on ``day``: the edge dates a sale by ``created_at``, so must the source."""
        start, end = timeutil.day_bounds_us(day)
        body = self._orders_query("CREATED_AT", start, end - 1, ["COMPLETED"], self._page_limit)
        txns = lines = 0
        qty = value = Decimal(0)  # exact, as the source's own NUMERIC sums are; rounded once at the end
        server_cursor: Optional[str] = None
        while True:
            orders, server_cursor = self._pages("POST", "/v2/orders/search", "control totals", "orders",
                                                body=body, cursor=server_cursor)
            for o in orders:
                if not isinstance(o, dict) or o.get("state") != "COMPLETED":
                    continue
                try:
                    t = square.order_to_txn(self.name, self.store, o)
                except square.RowError as e:
                    # counted as the source has it, so the totals differ from the edge (which quarantined it)
                    log.warning("%s: control totals %s: order %s: %s", self.name, day, o.get("id"), e)
                    txns, lines = txns + 1, lines + square.raw_line_count(o)
                    continue
                if not start <= int(round(t.business_ts * 1e6)) < end:
                    continue  # an API that reads end_at as inclusive, or ignores the filter
                txns += 1
                lines += len(t.lines)
                qty += sum(Decimal(repr(ln.qty)) for ln in t.lines)
                value += sum(Decimal(repr(ln.qty)) * Decimal(repr(ln.price)) for ln in t.lines)
            if server_cursor is None:
                break
        return DayTotals(day, txns, lines, float(qty), round(float(value), 2))

    # --- change signal ---------------------------------------------------------------------------------

    def wait_for_change(self, timeout_s: float) -> bool:
        """REST has no change signal: wait (interruptibly) and let the caller poll."""
        self._stop.wait(timeout_s)
        return False


def _square_error(r: requests.Response) -> str:
    """': CODE: detail' from a Square error body, if there is one (bounded; bodies carry no secrets)."""
    try:
        errors = r.json().get("errors")
        first = errors[0]
        return f": {first.get('code', '?')}: {str(first.get('detail', ''))[:200]}"
    except (ValueError, AttributeError, IndexError, KeyError, TypeError):
        return ""

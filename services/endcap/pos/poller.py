"""One poll cycle of the pos service: read every stream, screen, commit, decide what to publish.

The poller owns the adapter and the writable store. It never sleeps: ``cycle()`` does one round and
returns how long the caller may wait (for the source's change signal) before the next round. Retry
timing comes from ``core.backoff``; reconciliation and sweep decisions from ``reconcile``/``cursor``.
"""
from __future__ import annotations

import logging
import random
from dataclasses import dataclass, field
from typing import Callable

from ..core import messages as m
from ..core import timeutil
from ..core.backoff import Backoff
from ..core.errors import UpstreamError
from ..core.health import HealthState
from . import reconcile
from .adapters.api import Cursor, PosAdapter, Quarantined, Txn
from .config import PosConfig
from .cursor import SweepPlan, advance
from .store import EdgeStore

log = logging.getLogger(__name__)

MAX_PAGES_PER_CYCLE = 50  # bound one cycle so health and RPC stay responsive during a catch-up
SWEEP_PAGE_ROWS = 100  # a sweep advances one small page per step, so new rows never wait long behind it


@dataclass
class Outbox:
    """What a cycle wants published (the service publishes after commit; pub/sub is lossy anyway)."""

    baskets: list[Txn] = field(default_factory=list)
    stock_skus: set[str] = field(default_factory=set)


class PosPoller:
    def __init__(self, adapter: PosAdapter, store: EdgeStore, cfg: PosConfig, health: HealthState,
                 *, rand: Callable[[], float] = random.random) -> None:
        self.adapter = adapter
        self.store = store
        self.cfg = cfg
        self.health = health
        self._rand = rand
        self._backoff = Backoff(cfg.backoff_base_s, cfg.backoff_cap_s)
        self._attempt = 0
        lookback_us = int(cfg.lookback_s * 1e6)
        self._lookback_us = lookback_us
        self._sweeps = {s: SweepPlan(lookback_us, cfg.sweep_interval_s) for s in adapter.streams}
        self._known: set[str] | None = None
        self._catalogue_at = float("-inf")
        self.source_now_us = 0  # newest change time seen: the source's clock as far as we know it
        self._changed_behind = False

    @property
    def backing_off(self) -> bool:
        return self._attempt > 0

    # --- one round ---------------------------------------------------------------------------------

    def cycle(self, now: float, *, changed: bool = False) -> tuple[Outbox, float]:
        """Read what is new in every stream. Returns (what to publish, seconds to wait before the next cycle).

        ``changed``: the source signalled a change. If no stream had new rows, the change happened behind
        the cursors (a late row), and the next ``sweep_step`` sweeps at once.
        """
        out = Outbox()
        try:
            if self._known is None or now - self._catalogue_at >= self.cfg.catalogue_refresh_s:
                self.refresh_catalogue(now)
            rows = 0
            for stream in self.adapter.streams:
                rows += self._read(stream, self.store.cursor(stream), now, out)[0]
            self._changed_behind = changed and rows == 0
            self._reconcile_closed_days(now)
        except UpstreamError as e:
            return out, self._failed(e, now)
        self._succeeded(now)
        return out, self.cfg.poll_interval_s

    def sweep_step(self, now: float) -> Outbox | None:
        """Advance the lookback sweep of the first stream that needs one by one small page.

        Returns what to publish, or None when no sweep is due. Errors count like a failed poll.
        """
        for stream in self.adapter.streams:
            plan = self._sweeps[stream]
            if plan.covered_us is None:
                saved = self.store.meta(f"sweep_covered_us:{stream}")
                plan.covered_us = int(saved) if saved else None
            if not plan.due(self.store.cursor(stream), now, changed_behind=self._changed_behind):
                continue
            out = Outbox()
            try:
                start = plan.start(self.store.cursor(stream))
                _, reached, finished = self._read(stream, start, now, out, max_pages=1, page_rows=SWEEP_PAGE_ROWS)
            except UpstreamError as e:
                self._failed(e, now)
                return out
            plan.progress(reached, finished, now)
            if finished:
                self.store.set_meta(f"sweep_covered_us:{stream}", str(plan.covered_us))
                self.health.count("sweeps")
            return out
        self._changed_behind = False
        return None

    def _failed(self, e: UpstreamError, now: float) -> float:
        self._attempt += 1
        self.health.failure(e, now)
        self.health.count("poll_errors")
        delay = self._backoff.delay(self._attempt, self._rand(), getattr(e, "retry_after", None))
        log.warning("pos poll failed (attempt %d, next in %.1f s): [%s] %s", self._attempt, delay, e.code, e)
        return delay

    def _succeeded(self, now: float) -> None:
        if self._attempt:
            log.info("pos source reachable again after %d failed attempts", self._attempt)
        self._attempt = 0
        self.health.success(now)

    def refresh_health_counters(self) -> None:
        """Counters for the health message; a few COUNT queries, so only when health is published."""
        self.health.set("lag_s", max(0.0, (self.source_now_us - self.store.cursor("sales").ts_us) / 1e6))
        self.health.set("source_clock", self.source_now_us / 1e6)
        for k, v in self.store.counts().items():
            self.health.set(k, v)

    def refresh_catalogue(self, now: float) -> None:
        items = self.adapter.catalogue()
        self.store.replace_catalogue(items, now=now)
        self._known = {i.sku for i in items}
        self._catalogue_at = now
        self.health.set("catalogue_items", len(items))

    # --- streams -----------------------------------------------------------------------------------

    def _read(self, stream: str, start: Cursor, now: float, out: Outbox, *, max_pages: int = MAX_PAGES_PER_CYCLE,
              page_rows: int | None = None) -> tuple[int, Cursor, bool]:
        """Read pages from ``start`` (bounded). Returns (rows read, cursor reached, reached the end)."""
        cursor, rows, finished = start, 0, False
        for _ in range(max_pages):
            page = self.adapter.poll(stream, cursor, page_rows or self.cfg.page_size)
            rows += len(page.events) + len(page.quarantined)
            if stream == "sales":
                good, bad = self._screen(page.events, now)
                changed, dups = self.store.apply_sales(stream, good, list(page.quarantined) + bad, page.next_cursor, now=now)
                out.baskets.extend(t for t in changed if t.status != "suspended")
                self.health.count("duplicates_skipped", dups)
                self.health.count("txns_applied", len(changed))
            else:
                out.stock_skus |= self.store.apply_stock(stream, page.events, page.quarantined, page.next_cursor, now=now)
            for q in page.quarantined:
                log.warning("quarantined %s row %s: %s", q.stream, q.source_key, q.reason)
            self.source_now_us = max(self.source_now_us, page.next_cursor.ts_us)
            cursor = advance(cursor, page.next_cursor)
            if not page.more:
                finished = True
                break
        return rows, cursor, finished

    def _screen(self, txns: list[Txn], now: float) -> tuple[list[Txn], list[Quarantined]]:
        """Transactions naming a SKU the catalogue lacks are quarantined whole (after one catalogue refresh)."""
        assert self._known is not None
        unknown = [t for t in txns if any(ln.sku not in self._known for ln in t.lines)]
        if unknown and now - self._catalogue_at > 1.0:
            self.refresh_catalogue(now)
            unknown = [t for t in txns if any(ln.sku not in self._known for ln in t.lines)]
        if not unknown:
            return txns, []
        bad_ids = {t.txn_id for t in unknown}
        bad = []
        for t in unknown:
            skus = sorted({ln.sku for ln in t.lines if ln.sku not in self._known})
            bad.append(Quarantined("sales", t.txn_id, f"unknown SKU(s) {', '.join(skus)}", repr(t)[:2000]))
        return [t for t in txns if t.txn_id not in bad_ids], bad

    # --- reconciliation ----------------------------------------------------------------------------

    def _reconcile_closed_days(self, now: float) -> None:
        done = self.store.reconciled_days()
        closed = reconcile.closed_days(self.store.business_days(), done, self.source_now_us,
                                       self._lookback_us + int(self.cfg.reconcile_grace_s * 1e6), now)
        for day in closed:
            self.reconcile_day(day, now)

    def reconcile_day(self, day: str, now: float) -> bool:
        """Compare control totals for ``day``; on a mismatch, re-read from the day's start to repair."""
        source = self.adapter.day_totals(day)
        edge = self.store.day_totals(day)
        ok = reconcile.matches(source, edge)
        if not ok:
            log.info("reconciliation %s: source %s != edge %s; re-reading the day", day, source, edge)
            start_us, _ = timeutil.day_bounds_us(day)
            cursor, finished = Cursor(max(0, start_us - self._lookback_us), ""), False
            while not finished:  # re-read the whole day, page by page
                _, cursor, finished = self._read("sales", cursor, now, Outbox())
            edge = self.store.day_totals(day)
            ok = reconcile.matches(source, edge)
        self.store.record_reconciliation(day, ok, source, edge, now)
        if not ok:
            log.error("reconciliation %s still differs after repair: source %s edge %s", day, source, edge)
        return ok

    # --- what the bus gets ---------------------------------------------------------------------------

    def basket_message(self, t: Txn) -> m.Basket:
        return m.Basket(t.store, t.txn_id, t.business_ts, t.status,
                        [m.BasketLine(ln.line, ln.sku, ln.qty, ln.price, ln.type) for ln in t.lines], t.shopper_id)

"""Replay a store's baskets into the POS database on an accelerated clock, with planned faults.

Responsibility: decide *when* each change happens and keep the in-memory truth (true stock per item,
in ``stock.StockLedger``); the SQL is in ``writer``, the fault plan in ``faults``.

The source clock is business time: basket ``i`` is written at its timestamp ``T_i``; what follows a
basket (fault actions, restocks, recounts) at ``A_i = T_i + min(ACTION_LAG_S, half the gap to the next
basket)``. ``speed`` maps source seconds to wall seconds (``inf``: no waiting, commits in batches).

Invariants:
- the clock ticks strictly upwards, at least 1 µs per write event, so every stock movement is dated
  after every earlier count and movement: *latest count + movements dated after it* equals the true
  stock (``truth.source_stock``). Faults that bend time (late, clock_skew) touch only
  ``ospos_sales.updated_at``, never stock times. A sales row can land at most
  ``late_max_s + 2 * faults.SKEW_S`` (840 s by default: a fast-clock stretch closely followed by a
  slow one, then a late sale) behind the newest row written before it: the edge's lookback must
  cover that.
- sale ``i`` has ``sale_id = i + 1`` (stable for a store and seed); a return of sale ``s`` is sale
  ``RETURN_ID_OFFSET + s``; lines are numbered from 1.
- stock moves when a sale is completed (insert, late insert, flip), comes back on a return or on the
  cancel of a completed sale; a suspended sale moves nothing.
- the same dataset, faults and seed write the same rows, at any speed (no wall-clock value is
  written; only ``restock()`` during a paced ``run()`` dates its row by the wall clock).
- after an error the database is rolled back to its last commit and the simulator must not be reused.
"""
from __future__ import annotations

import logging
import math
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Callable, Iterable, Optional

from endcap.sim import writer
from endcap.sim.dataset import Basket, StoreData
from endcap.sim.errors import SimError
from endcap.sim.faults import DEFAULT_LATE_MAX_S, Action, plan_faults
from endcap.sim.sourcedb import Source, redact
from endcap.sim.stock import StockLedger

log = logging.getLogger(__name__)

US = 1_000_000
ACTION_LAG_S = 30.0
RETURN_ID_OFFSET = 1_000_000_000
INITIAL_STOCK = (20, 60)
RESTOCK_QTY = (24, 48)


@dataclass(frozen=True)
class Progress:
    baskets: int  # baskets replayed so far
    total: int
    lines: int  # sale lines written (incl. returns)
    source_us: int  # the source clock
    faults: dict[str, int]  # faults that happened, by --faults name; clock_skew counts skewed sales writes
    done: bool


class Simulator:
    """Replays ``dataset`` into ``source``; ``prepare()`` once, then ``step()``/``run()``.

    Raises (constructor):
        SimError: speed <= 0, or an unknown fault / bad fault option.
    """

    def __init__(
        self,
        source: Source,
        dataset: StoreData,
        speed: float = math.inf,
        faults: Iterable[str] = (),
        seed: int = 1,
        *,
        rates: Optional[dict[str, float]] = None,
        late_max_s: float = DEFAULT_LATE_MAX_S,
        batch_size: int = 200,
        restock_every: int = 20,
        recount_every: int = 50,
        recount_items: int = 5,
        low_stock: int = 5,
    ) -> None:
        if not speed > 0:
            raise SimError(f"speed {speed}: must be > 0 source seconds per wall second")
        self.source, self.data, self.speed = source, dataset, float(speed)
        try:
            self.plan = plan_faults(
                random.Random(f"{seed}:faults"), [len(b.lines) for b in dataset.baskets], faults,
                rates=rates, late_max_s=late_max_s, late_min_s=ACTION_LAG_S + 1,  # behind the rows of its basket
            )
        except ValueError as e:
            raise SimError(f"faults: {e}") from e
        self._rng = random.Random(f"{seed}:stock")  # str seeds are stable across processes
        self._batch, self._restock_every, self._recount_every = batch_size, restock_every, recount_every
        self._recount_items = recount_items
        self._stock = StockLedger(low_stock)
        self._next = 0  # next basket index
        self._half = False  # basket _next was written, its after phase not yet
        self._clock = 0  # last tick, µs
        self._anchor: Optional[tuple[float, int]] = None  # (wall, source µs) while run() paces
        self._loyalty = False
        self._lock = threading.Lock()  # restock() may come from another thread than run()
        self.fault_counts: Counter[str] = Counter()
        self.lines_written = 0
        self.start_us = 0

    # Setup ------------------------------------------------------------------------------------------
    def prepare(self, reset: bool = False) -> None:
        """Create the schema, write the catalogue and initial counts (20..60 each, at the start time).

        Raises:
            SimError: the source already holds sales (and ``reset`` is False), or a database error.
        """
        with self._lock:
            self.source.create_schema(reset=reset)
            existing = writer.count_rows(self.source, "ospos_items")
            if existing:  # replaying over an earlier run would clash on sale ids and muddle the truth
                raise SimError(f"{redact(self.source.url)}: already holds {existing} items; use a fresh database or --reset")
            first = self.data.baskets[0].business_us if self.data.baskets else 0
            self.start_us = self._clock = first - US
            counts = self._stock.count_all((i.item_id for i in self.data.items), self._rng, *INITIAL_STOCK)
            self._loyalty = self.source.has_column("ospos_sales_items", writer.LOYALTY_COLUMN)
            self._guard(lambda: (
                writer.insert_items(self.source, self.data.items),
                writer.insert_counts(self.source, counts.items(), self.start_us),
            ))
            self.source.commit()
        log.info("sim: %d items, %d baskets ready in %r", len(self.data.items), len(self.data.baskets), self.source)

    # Replay -----------------------------------------------------------------------------------------
    @property
    def done(self) -> bool:
        return self._next >= len(self.data.baskets)

    def step(self) -> bool:
        """Replay the next basket and what follows it, without waiting; commit. False when none was left."""
        if self.done:
            return False
        with self._lock:
            i = self._next
            if not self._half:
                self._guard(lambda: self._basket_phase(i))
            self._guard(lambda: self._after_phase(i))
            self._next, self._half = i + 1, False
            self.source.commit()
        return True

    def run(self, stop_event: Optional[threading.Event] = None,
            progress: Optional[Callable[[Progress], None]] = None, progress_every_s: float = 1.0) -> int:
        """Replay the remaining baskets paced by ``speed`` until done or ``stop_event`` is set.

        Returns the number of baskets replayed by this call. Waits only in ``stop_event.wait``, so a
        stop takes effect at once; what was written is committed before returning.
        """
        stop = stop_event or threading.Event()
        self._anchor = (time.perf_counter(), self._clock)
        try:
            replayed = self._replay(stop, progress, progress_every_s)
        finally:
            self._anchor = None
        with self._lock:  # not reached after an error: the database was rolled back, leave it so
            self.source.commit()
        if progress:
            progress(self.progress())
        return replayed

    def _replay(self, stop: threading.Event, progress: Optional[Callable[[Progress], None]], every_s: float) -> int:
        paced = math.isfinite(self.speed)
        last_report, replayed = time.perf_counter(), 0
        while not self.done:
            i = self._next
            phases = ((self._basket_time(i), self._basket_phase), (self._after_time(i), self._after_phase))
            for at_us, phase in phases[1:] if self._half else phases:
                if not self._pace(stop, at_us):
                    return replayed
                with self._lock:
                    self._guard(lambda: phase(i))
                    self._half = phase == self._basket_phase  # a stop here resumes at the after phase
                    if paced:
                        self.source.commit()
            with self._lock:
                self._next, self._half = i + 1, False
                replayed += 1
                if not paced and replayed % self._batch == 0:
                    self.source.commit()
            if progress and time.perf_counter() - last_report >= every_s:
                last_report = time.perf_counter()
                progress(self.progress())
        return replayed

    def _pace(self, stop: threading.Event, at_us: int) -> bool:
        """Wait until source time ``at_us`` is due on the wall clock; False if stopped meanwhile."""
        if not math.isfinite(self.speed):
            return not stop.is_set()
        wall0, src0 = self._anchor
        delay = wall0 + (at_us - src0) / US / self.speed - time.perf_counter()
        return not (stop.wait(delay) if delay > 0 else stop.is_set())

    def restock(self, item_id: int, qty: float) -> float:
        """One stock delivery for ``item_id``, dated by the source clock now, committed at once.

        Returns ``time.perf_counter()`` taken just before the commit (the latency benchmark's start).
        """
        with self._lock:
            if item_id not in self._stock:
                raise SimError(f"item {item_id}: not in store {self.data.store_id}'s catalogue")
            now = self._tick(self._mapped_now())
            self._guard(lambda: writer.insert_movements(self.source, [(item_id, qty, "restock")], now))
            self._stock.move(item_id, qty)
            t = time.perf_counter()
            self.source.commit()
            return t

    # Truth and progress -----------------------------------------------------------------------------
    def expected_stock(self) -> dict[str, float]:
        """True stock per SKU (str item id) after everything written so far."""
        with self._lock:
            return self._stock.snapshot()

    @property
    def source_now_us(self) -> int:
        return self._clock

    def progress(self) -> Progress:
        return Progress(self._next, len(self.data.baskets), self.lines_written, self._clock,
                        dict(self.fault_counts), self.done)

    # Internals --------------------------------------------------------------------------------------
    def _guard(self, fn: Callable[[], object]) -> None:
        try:
            fn()
        except BaseException:
            self.source.rollback()  # the database goes back to its last commit, never half a sale
            raise

    def _tick(self, at_us: int) -> int:
        self._clock = max(int(at_us), self._clock + 1)
        return self._clock

    def _mapped_now(self) -> int:
        if self._anchor is None or not math.isfinite(self.speed):
            return self._clock
        wall0, src0 = self._anchor
        return src0 + int((time.perf_counter() - wall0) * self.speed * US)

    def _basket_time(self, i: int) -> int:
        return self.data.baskets[i].business_us

    def _after_time(self, i: int) -> int:
        b = self.data.baskets
        gap = (b[i + 1].business_us - b[i].business_us) / 2 if i + 1 < len(b) else math.inf
        return b[i].business_us + int(min(ACTION_LAG_S * US, gap))

    def _updated(self, i: int, now: int) -> int:
        """``updated_at`` for a sales write during basket ``i``: the source clock, skewed in a stretch."""
        skew = self.plan.skew_at(i)
        if skew:
            self.fault_counts["clock_skew"] += 1
        return now + int(skew * US)

    def _basket_phase(self, i: int) -> None:
        if i in self.plan.held:
            return  # a late sale: written by its late_insert action
        b = self.data.baskets[i]
        now = self._tick(b.business_us)
        suspended = i in self.plan.suspended
        self._write_sale(i + 1, b, self._updated(i, now), status=1 if suspended else 0)
        if not suspended:
            self._move(b, -1, f"POS {i + 1}", now)

    def _after_phase(self, i: int) -> None:
        acts = self.plan.actions.get(i, ())
        periodic = (i + 1) % self._restock_every == 0 or (i + 1) % self._recount_every == 0
        if not acts and not periodic:
            return
        at = self._after_time(i)
        for act in acts:
            self._act(i, act, self._tick(at))
        if (i + 1) % self._restock_every == 0:
            moves = [(k, self._rng.randint(*RESTOCK_QTY), "restock") for k in self._stock.take_low()]
            self._moves(moves, self._tick(at))
        if (i + 1) % self._recount_every == 0:
            sold = self._stock.take_sold()
            picked = sorted(self._rng.sample(sold, min(self._recount_items, len(sold))))
            # a count equal to the truth: stock stays the same, only the edge's base moves
            writer.update_counts(self.source, [(k, self._stock.qty[k]) for k in picked], self._tick(at))

    def _act(self, i: int, act: Action, now: int) -> None:
        src, t = self.source, act.target
        if act.kind == "add_column":
            self._loyalty = writer.add_loyalty_column(src) or self._loyalty
            self.fault_counts["added_column"] += 1
            return
        b, sid = self.data.baskets[t], t + 1
        if act.kind == "late_insert":
            back = max(b.business_us, now - int(act.back_s * US))  # never changed before it happened
            self._write_sale(sid, b, self._updated(i, back), status=0)
            self._move(b, -1, f"POS {sid}", now)
            self.fault_counts["late"] += 1
        elif act.kind == "flip":
            writer.set_sale_status(src, sid, writer.STATUS["completed"], self._updated(i, now))
            self._move(b, -1, f"POS {sid}", now)
            self.fault_counts["suspend_flip"] += 1
        elif act.kind == "duplicate":
            writer.touch_sale(src, sid, self._updated(i, now))
            self.fault_counts["duplicate"] += 1
        elif act.kind == "cancel":
            writer.set_sale_status(src, sid, writer.STATUS["cancelled"], self._updated(i, now))
            self._move(b, +1, f"cancel POS {sid}", now)
            self.fault_counts["cancel"] += 1
        elif act.kind == "return":
            rid = RETURN_ID_OFFSET + sid
            back = [ln for ln in b.lines if ln.line in act.lines]
            rows = [(k, ln.item_id, -ln.quantity, ln.unit_price) for k, ln in enumerate(back, 1)]
            writer.insert_sale(src, rid, now, self._updated(i, now), b.customer_id, rows,
                               sale_type=writer.SALE_TYPE_RETURN, comment=f"return of POS {sid}", loyalty=self._loyalty)
            self.lines_written += len(rows)
            self._moves([(ln.item_id, ln.quantity, f"return POS {rid}") for ln in back], now)
            self.fault_counts["return"] += 1
        else:
            raise SimError(f"fault action {act.kind!r}: not known to the replay")

    def _write_sale(self, sale_id: int, b: Basket, updated: int, status: int) -> None:
        rows = [(ln.line, ln.item_id, ln.quantity, ln.unit_price) for ln in b.lines]
        writer.insert_sale(self.source, sale_id, b.business_us, updated, b.customer_id, rows, status=status,
                           comment=f"basket {b.basket_id}", loyalty=self._loyalty)
        self.lines_written += len(rows)

    def _move(self, b: Basket, sign: int, comment: str, now: int) -> None:
        self._moves([(ln.item_id, sign * ln.quantity, comment) for ln in b.lines], now)

    def _moves(self, moves: list[tuple[int, float, str]], now: int) -> None:
        """Stock movements in the database and in the truth, together."""
        writer.insert_movements(self.source, moves, now)
        for item_id, delta, _ in moves:
            self._stock.move(item_id, delta)

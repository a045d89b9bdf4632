"""Pure cursor arithmetic: where to read from, and when to re-read the lookback window.

The main cursor only moves forward. Late rows (back-dated inserts, a POS clock that jumped back)
land behind it; a *sweep* re-reads them. Each sweep starts ``lookback`` before the main-cursor
position at which the previous sweep started (``covered_us``), so a row that is written while the
cursor is anywhere past that point and dated at most ``lookback`` behind the cursor is re-read,
however far a burst moved the cursor in between. A sweep that needs more pages than one cycle
allows continues in the next cycle (``pending``). Sweeps start when the cursor advanced by
``lookback / 4`` since the last one, when the source signalled a change that produced no new rows (a
change behind the cursor), and on a wall-clock interval. ADR 0002 has the reasoning.
"""
from __future__ import annotations

from dataclasses import dataclass

from .adapters.api import Cursor


def advance(current: Cursor, candidate: Cursor) -> Cursor:
    """The later of two cursors (a sweep never moves the main cursor back)."""
    return candidate if (candidate.ts_us, _pk_key(candidate.pk)) > (current.ts_us, _pk_key(current.pk)) else current


def _pk_key(pk: str) -> tuple[int, int | str]:
    # "" means "the start of that microsecond" and sorts first; numeric keys compare as numbers
    # ("10" > "9"); others as text
    if not pk:
        return (-1, 0)
    return (0, int(pk)) if pk.lstrip("-").isdigit() else (1, pk)


@dataclass
class SweepPlan:
    lookback_us: int
    interval_s: float
    covered_us: int | None = None  # main-cursor time at which the last finished sweep started
    last_sweep_at: float = float("-inf")
    pending: Cursor | None = None  # where an unfinished sweep continues
    target_us: int = 0

    def due(self, current: Cursor, now: float, changed_behind: bool) -> bool:
        if self.pending is not None:
            return True
        if self.covered_us is None or changed_behind:
            return True
        if current.ts_us - self.covered_us >= self.lookback_us // 4:
            return True
        return now - self.last_sweep_at >= self.interval_s

    def start(self, current: Cursor) -> Cursor:
        """Where the sweep reads from (continuing an unfinished one first)."""
        if self.pending is None:
            base = current.ts_us if self.covered_us is None else min(self.covered_us, current.ts_us)
            self.target_us = current.ts_us
            self.pending = Cursor(max(0, base - self.lookback_us), "")
        return self.pending

    def progress(self, reached: Cursor, finished: bool, now: float) -> None:
        if finished:
            self.covered_us = self.target_us
            self.last_sweep_at = now
            self.pending = None
        else:
            self.pending = reached

"""Pure control-total reconciliation: which business days are closed, and do two totals agree."""
from __future__ import annotations

from .adapters.api import DayTotals
from ..core import timeutil

MONEY_TOLERANCE = 0.005  # half a cent: sums of two-decimal prices in floating point


def matches(source: DayTotals, edge: DayTotals) -> bool:
    return (source.txns == edge.txns and source.lines == edge.lines and abs(source.qty - edge.qty) < 1e-6
            and abs(source.value - edge.value) < MONEY_TOLERANCE)


def closed_days(days_seen: list[str], done: dict[str, bool], source_now_us: int, settle_us: int) -> list[str]:
    """Days whose end is ``settle_us`` behind the source clock and that were not checked yet.

    A day that failed its check stays recorded as a mismatch (health counts it) and is not re-read on
    every cycle; ``endcap pos reconcile --day`` checks it again on demand.
    """
    out = []
    for day in days_seen:
        if day in done:
            continue
        _, end_us = timeutil.day_bounds_us(day)
        if source_now_us >= end_us + settle_us:
            out.append(day)
    return out

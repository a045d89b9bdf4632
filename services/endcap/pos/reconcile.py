"""Pure control-total reconciliation: which business days are closed, and do two totals agree."""
from __future__ import annotations

from .adapters.api import DayTotals
from ..core import timeutil

# Both sides round their value to cents, and a sum that lands on a half cent may round either way in
# floating point, so one cent is the smallest honest tolerance. A missing line still shows in the line
# and quantity counts, which are compared exactly.
MONEY_TOLERANCE = 0.0101


def matches(source: DayTotals, edge: DayTotals) -> bool:
    return (source.txns == edge.txns and source.lines == edge.lines and abs(source.qty - edge.qty) < 1e-6
            and abs(source.value - edge.value) < MONEY_TOLERANCE)


RECHECK_S = 86_400.0  # a day that still differs is checked again once a day (wall clock)


def closed_days(days_seen: list[str], checked: dict[str, tuple[bool, float]], source_now_us: int, settle_us: int,
                now: float, recheck_s: float = RECHECK_S) -> list[str]:
    """Days to reconcile now: closed (their end is ``settle_us`` behind the source clock) and either never
    checked, or found different more than ``recheck_s`` ago (so a fixed source heals without a re-read
    on every cycle)."""
    out = []
    for day in days_seen:
        prior = checked.get(day)
        if prior is not None and (prior[0] or now - prior[1] < recheck_s):
            continue
        _, end_us = timeutil.day_bounds_us(day)
        if source_now_us >= end_us + settle_us:
            out.append(day)
    return out

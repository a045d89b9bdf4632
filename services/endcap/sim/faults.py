"""Which source fault happens on which basket: a pure, seeded plan (no I/O, no clock reads).

The fault names are the values of ``endcap sim --faults``:

- ``duplicate``: a completed sale is re-written unchanged a few baskets later (only its ``updated_at``
  moves): the edge must not count it twice.
- ``late``: a sale is held back and written a few baskets later with ``updated_at`` back-dated by up to
  ``late_max_s`` source seconds, so it lands behind rows the edge has already read.
- ``suspend_flip``: a sale is written suspended (``sale_status=1``) and completed a few baskets later.
- ``return``: a few baskets later, a new sale (``sale_type=4``) returns some lines of a completed sale.
- ``cancel``: a completed sale is set to ``sale_status=2`` a few baskets later.
- ``added_column``: once, mid-replay, ``ospos_sales_items`` gains a column.
- ``clock_skew``: for stretches of baskets the POS clock behind ``updated_at`` runs 300 s fast or slow.

Invariants of a ``FaultPlan`` (what makes the replay's truth simple to keep):
- a basket has at most one of the per-basket roles (late, suspend_flip, duplicate, return, cancel), so
  a returned or cancelled sale is always a plain completed one when the action runs;
- every action runs after the basket it is scheduled at, and that basket is never before its target;
- a late sale is written after a later basket that was written completed at its own time;
- every enabled fault happens at least once when there are enough baskets (>= ``MIN_BASKETS``);
- the same ``random.Random`` state and inputs give the same plan.
"""
from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Iterable, Mapping, Optional, Sequence

ALL_FAULTS = ("duplicate", "late", "suspend_flip", "return", "cancel", "added_column", "clock_skew")
PER_BASKET = ("duplicate", "late", "suspend_flip", "return", "cancel")
DEFAULT_RATES: Mapping[str, float] = {
    "duplicate": 0.02,
    "late": 0.02,
    "suspend_flip": 0.02,
    "return": 0.015,
    "cancel": 0.01,
}
DEFAULT_LATE_MAX_S = 240.0
SKEW_S = 300.0
MAX_DELAY = 5  # an action follows its target by 1..MAX_DELAY baskets
MAX_RETURN_LINES = 3
SKEW_LEN = (5, 30)  # baskets per clock-skew stretch
BASKETS_PER_SKEW = 400
MIN_BASKETS = 2 * len(ALL_FAULTS)


@dataclass(frozen=True)
class Action:
    """Something written after a basket: ``kind`` is late_insert | flip | duplicate | return | cancel | add_column."""

    kind: str
    target: int = -1  # basket index the action is about (-1 for add_column)
    lines: tuple[int, ...] = ()  # return: the target's line numbers given back
    back_s: float = 0.0  # late_insert: how far updated_at is back-dated


@dataclass(frozen=True)
class FaultPlan:
    held: frozenset[int] = frozenset()  # late baskets: written by a later late_insert, not at their turn
    suspended: frozenset[int] = frozenset()  # written with sale_status=1, completed by a later flip
    actions: Mapping[int, tuple[Action, ...]] = field(default_factory=dict)  # after basket i -> actions
    skew: tuple[tuple[int, int, float], ...] = ()  # (first, last, offset_s), basket indexes inclusive

    def skew_at(self, index: int) -> float:
        """The clock offset (seconds) of ``updated_at`` while basket ``index`` is being replayed."""
        for first, last, offset in self.skew:
            if first <= index <= last:
                return offset
        return 0.0

    def counts(self) -> dict[str, int]:
        """Faults planned, by ``--faults`` name (clock_skew counts baskets inside a stretch)."""
        names = {"late_insert": "late", "flip": "suspend_flip", "add_column": "added_column"}
        c: Counter[str] = Counter()
        for acts in self.actions.values():
            for a in acts:
                c[names.get(a.kind, a.kind)] += 1
        for first, last, _ in self.skew:
            c["clock_skew"] += last - first + 1
        return dict(c)


_NOT_WRITTEN_ON_TIME = ("late", "suspend_flip")  # no completed row at the basket's own time


def _allowed(roles: Mapping[int, str], i: int, kind: str, n: int) -> bool:
    """Keep the basket after a late one written on time, so the late row has a row to land behind."""
    if kind in _NOT_WRITTEN_ON_TIME and roles.get(i - 1) == "late":
        return False
    if kind == "late":
        return i + 1 < n and roles.get(i + 1) not in _NOT_WRITTEN_ON_TIME
    return True


def parse_faults(spec: str) -> frozenset[str]:
    """``all`` | ``none`` | ``a,b,c`` → a set of fault names.

    Raises:
        ValueError: an unknown fault name (the message names it and lists the known ones).
    """
    spec = spec.strip()
    if spec == "all":
        return frozenset(ALL_FAULTS)
    if spec in ("none", ""):
        return frozenset()
    names = [s.strip() for s in spec.split(",") if s.strip()]
    unknown = [n for n in names if n not in ALL_FAULTS]
    if unknown:
        raise ValueError(f"unknown fault {unknown[0]!r} (known: all, none, {', '.join(ALL_FAULTS)})")
    return frozenset(names)


def plan_faults(
    rng: random.Random,
    line_counts: Sequence[int],
    faults: Iterable[str],
    *,
    rates: Optional[Mapping[str, float]] = None,
    late_max_s: float = DEFAULT_LATE_MAX_S,
    late_min_s: float = 1.0,
) -> FaultPlan:
    """Plan faults over baskets whose line counts are ``line_counts`` (in replay order).

    Late sales are back-dated by ``late_min_s``..``late_max_s`` seconds (``late_min_s`` is clamped to
    ``late_max_s``); the replay sets the minimum above its own write lag so a late row always lands
    behind rows written before it.

    Raises:
        ValueError: an unknown fault name, a bad late_max_s, a negative rate or rates summing above 1.
    """
    enabled = frozenset(faults)
    unknown = sorted(enabled - set(ALL_FAULTS))
    if unknown:
        raise ValueError(f"unknown fault {unknown[0]!r}")
    rates = {**DEFAULT_RATES, **(rates or {})}
    if not 0 < late_max_s < float("inf"):
        raise ValueError(f"late_max_s {late_max_s}: must be > 0")
    if any(r < 0 for r in rates.values()) or sum(rates[k] for k in PER_BASKET if k in enabled) > 1:
        raise ValueError(f"fault rates must be >= 0 and sum to <= 1: {rates}")
    n = len(line_counts)
    if n == 0:
        return FaultPlan()

    # One draw per basket, whatever is enabled, so a plan's other faults do not move when one is added.
    roles: dict[int, str] = {}
    for i in range(n):
        u, acc = rng.random(), 0.0
        for kind in PER_BASKET:
            acc += rates[kind]
            if u < acc:
                if kind in enabled and _allowed(roles, i, kind, n):
                    roles[i] = kind
                break
    if n >= MIN_BASKETS:
        for kind in PER_BASKET:
            if kind in enabled and kind not in roles.values():
                free = [i for i in range(n) if i not in roles and _allowed(roles, i, kind, n)]
                roles[rng.choice(free)] = kind

    actions: dict[int, list[Action]] = {}
    held, suspended = set(), set()
    for i in sorted(roles):
        kind = roles[i]
        at = min(i + rng.randint(1, MAX_DELAY), n - 1)
        if kind == "late":
            # after a basket written at its own time (i + 1 always is): the late row lands behind it
            at = max(k for k in range(i + 1, max(at, i + 1) + 1) if roles.get(k) not in _NOT_WRITTEN_ON_TIME)
            held.add(i)
            act = Action("late_insert", i, back_s=round(rng.uniform(min(late_min_s, late_max_s), late_max_s), 6))
        elif kind == "suspend_flip":
            suspended.add(i)
            act = Action("flip", i)
        elif kind == "return":
            k = rng.randint(1, min(MAX_RETURN_LINES, line_counts[i]))
            act = Action("return", i, lines=tuple(sorted(rng.sample(range(1, line_counts[i] + 1), k))))
        else:
            act = Action(kind, i)
        actions.setdefault(at, []).append(act)

    if "added_column" in enabled:
        at = rng.randint(n // 3, max(n // 3, (2 * n) // 3))
        actions.setdefault(at, []).append(Action("add_column"))

    skew: list[tuple[int, int, float]] = []
    if "clock_skew" in enabled:
        stretches = max(2, n // BASKETS_PER_SKEW) if n >= 4 * SKEW_LEN[0] else 1
        sign = rng.choice((1.0, -1.0))
        width = n // stretches
        for s in range(stretches):  # one stretch inside each equal slice: never overlapping
            length = min(rng.randint(*SKEW_LEN), max(1, width - 1))
            first = s * width + rng.randint(0, max(0, width - length))
            skew.append((first, min(first + length - 1, n - 1), sign * SKEW_S))
            sign = -sign  # alternate, so both a fast and a slow clock happen when there are >= 2
    return FaultPlan(
        held=frozenset(held),
        suspended=frozenset(suspended),
        actions={k: tuple(v) for k, v in sorted(actions.items())},
        skew=tuple(skew),
    )

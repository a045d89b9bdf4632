"""Pure rules of what a screen shows: the loop item due at a local time, and which offers interrupt it.

No I/O and no clock: callers pass the local weekday (0 = Monday) and seconds after local midnight, or
the current epoch time for offers. The page (``static/page.js``) mirrors ``due`` in a few lines of JS
so it keeps playing offline; ``tests/integration/test_signage_dayparts.py`` checks the two agree.

Loop timing (invariants):
- The day is cut into *segments* at every window edge of every item and daypart (and at midnight).
  Within a segment the set of eligible items cannot change, so each segment replays the eligible
  items from the first, in config order, each for its ``duration_s``: a daypart boundary starts the
  new loop at its first item, and every screen of the same loop is in step without talking.
- An item's window is cut short at the segment's end; nothing eligible → the built-in fallback.

Offers (invariants):
- An offer is shown only if every field is well-formed: ids and names are plain, text carries no
  markup or control characters and fits its limit, numbers are finite and in range. Anything else
  is rejected with a reason naming the field (the page also sets text only through ``textContent``).
- It stays up for its remaining TTL (``issued_at + ttl_s - now``), never more than ``ttl_max_s``;
  a newer offer for the same display replaces it; then the loop resumes where the clock says.
- An image that is not among the creatives is dropped for the built-in fallback image.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Optional

from ..core import messages as m
from .config import (BUILTIN_PREFIX, DAYS, FALLBACK_ITEM, IMAGE_EXTENSIONS, Daypart, Display, Loop,
                     LoopItem, creative_kind, creative_name_problem, seconds_of)

DAY_S = 86400


# --- loop -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Window:
    """``[start, end)`` seconds after local midnight on ``days`` (0 = Monday; empty = every day).

    ``end < start`` wraps past midnight; ``days`` is matched against the current calendar day.
    """

    days: frozenset[int]
    start: int
    end: int

    @classmethod
    def of(cls, days: Iterable[str], start: str, end: str) -> "Window":
        return cls(frozenset(DAYS.index(d) for d in days), seconds_of(start), seconds_of(end))

    def contains(self, weekday: int, sec: float) -> bool:
        if self.days and weekday not in self.days:
            return False
        if self.start < self.end:
            return self.start <= sec < self.end
        return sec >= self.start or sec < self.end


@dataclass(frozen=True)
class Slot:
    """A loop item as the schedule uses it."""

    id: str
    kind: str  # html | image
    creative: str  # file name, or builtin:<name>
    duration_s: float
    window: Window
    dayparts: tuple[str, ...]


@dataclass(frozen=True)
class Schedule:
    items: tuple[Slot, ...]
    dayparts: tuple[tuple[str, Window], ...]
    fallback: Slot
    boundaries: tuple[int, ...]  # sorted segment edges, always including 0 and 86400


@dataclass(frozen=True)
class Due:
    item: Slot
    daypart: Optional[str]
    since: float  # seconds after midnight this showing began (never before its segment)
    until: float  # when it ends: the item's end or the segment's, whichever comes first
    fallback: bool = False


def _slot(item: LoopItem) -> Slot:
    name = item.creative.removeprefix(BUILTIN_PREFIX)
    return Slot(item.id, item.kind or creative_kind(name), item.creative, float(item.duration_s),
                Window.of(item.days, item.start, item.end), tuple(item.dayparts))


def build_schedule(loop: Loop, dayparts: Iterable[Daypart]) -> Schedule:
    items = tuple(_slot(i) for i in loop.items)
    parts = tuple((p.name, Window.of(p.days, p.start, p.end)) for p in dayparts)
    edges = {0, DAY_S}
    for w in [s.window for s in items] + [w for _, w in parts]:
        edges.update((w.start, w.end))
    return Schedule(items, parts, _slot(FALLBACK_ITEM), tuple(sorted(edges)))


def daypart_at(s: Schedule, weekday: int, sec: float) -> Optional[str]:
    """The first daypart (config order) whose window holds this time, or None."""
    for name, w in s.dayparts:
        if w.contains(weekday, sec):
            return name
    return None


def eligible(s: Schedule, weekday: int, sec: float) -> list[Slot]:
    """Items whose window holds this time and whose dayparts (if any) include the current one."""
    part = daypart_at(s, weekday, sec)
    return [i for i in s.items if i.window.contains(weekday, sec) and (not i.dayparts or part in i.dayparts)]


def due(s: Schedule, weekday: int, sec: float) -> Due:
    """The item to show at ``sec`` seconds after local midnight on ``weekday``.

    Raises:
        ValueError: ``sec`` is outside [0, 86400) or ``weekday`` outside 0..6.
    """
    if not (0 <= sec < DAY_S) or weekday not in range(7):
        raise ValueError(f"no such local time: weekday {weekday}, {sec} s after midnight")
    seg = max(b for b in s.boundaries if b <= sec)
    nxt = min(b for b in s.boundaries if b > sec)
    part = daypart_at(s, weekday, sec)
    items = eligible(s, weekday, sec)
    if not items:
        return Due(s.fallback, part, seg, nxt, fallback=True)
    cycle = 0.0
    for i in items:
        cycle += i.duration_s
    phase = (sec - seg) % cycle
    acc = 0.0
    for i in items:
        if phase < acc + i.duration_s:
            since = sec - (phase - acc)
            return Due(i, part, since, min(since + i.duration_s, nxt))
        acc += i.duration_s
    last = items[-1]  # only reachable through float rounding at the very end of a cycle
    return Due(last, part, sec, min(sec + last.duration_s, nxt))


def creative_url(creative: str) -> str:
    if creative.startswith(BUILTIN_PREFIX):
        return "/display/static/builtin/" + creative.removeprefix(BUILTIN_PREFIX)
    return "/display/creatives/" + creative


def page_schedule(s: Schedule, present: Callable[[str], bool]) -> dict[str, Any]:
    """What the page needs to play ``s`` offline: items with URLs, dayparts, segment edges.

    ``present(name)`` says whether a creative file exists; a missing one is flagged so the page plays
    the fallback in its place without asking for it.
    """
    def slot(i: Slot) -> dict[str, Any]:
        builtin = i.creative.startswith(BUILTIN_PREFIX)
        return {"id": i.id, "kind": i.kind, "url": creative_url(i.creative), "duration_s": i.duration_s,
                "days": sorted(i.window.days), "start": i.window.start, "end": i.window.end,
                "dayparts": list(i.dayparts), "missing": not builtin and not present(i.creative)}

    return {
        "items": [slot(i) for i in s.items],
        "dayparts": [{"name": n, "days": sorted(w.days), "start": w.start, "end": w.end} for n, w in s.dayparts],
        "fallback": slot(s.fallback),
        "boundaries": list(s.boundaries),
    }


# --- offers ---------------------------------------------------------------------------------

class OfferRejected(ValueError):
    """An offer that must not reach a screen; ``str()`` names the field and the reason."""


@dataclass(frozen=True)
class OfferLimits:
    title_max: int = 80
    body_max: int = 240
    ttl_max_s: float = 30.0
    future_skew_s: float = 5.0  # an offer "issued" further ahead than this is a clock fault, not an offer


@dataclass(frozen=True)
class Card:
    """A checked offer, ready for the page. ``ttl_s`` is what remains of it at the time of checking."""

    offer_id: str
    zone: str
    sku: str
    title: str
    body: str
    price: Optional[float]
    discount_pct: Optional[float]
    image: Optional[str]  # a creative that exists, or None
    image_missing: bool  # the offer named an image we do not have: the page shows the fallback image
    ttl_s: float
    test: bool = False  # a maintenance test card (``maintenance_card``), never a real promotion

    def to_page(self, remaining_s: float) -> dict[str, Any]:
        page = {"id": self.offer_id, "zone": self.zone, "sku": self.sku, "title": self.title, "body": self.body,
                "price": self.price, "discount_pct": self.discount_pct,
                "image": None if self.image is None else creative_url(self.image),
                "image_missing": self.image_missing, "ttl_ms": max(0, int(remaining_s * 1000))}
        if self.test:
            page["test"] = True
        return page


TEST_PREFIX = "maint-test-"  # offer ids of maintenance test cards; refused on real offers
TEST_SKU = "TEST"


def is_test_offer(offer_id: Optional[str]) -> bool:
    return offer_id is not None and offer_id.startswith(TEST_PREFIX)


def maintenance_card(display: Display, token: str, ttl_s: float) -> Card:
    """Pure: the clearly marked test card the maintenance page pushes to ``display`` (``token``: unique)."""
    return Card(offer_id=f"{TEST_PREFIX}{token}"[:64], zone=display.zones[0], sku=TEST_SKU,
                title="TEST - not a real offer",
                body=f"Maintenance check of display {display.id}: if you can read this, offers reach this screen.",
                price=None, discount_pct=None, image=None, image_missing=False, ttl_s=ttl_s, test=True)


_OFFER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")
_MARKUP = re.compile(r"<\s*/?\s*[A-Za-z!?]")
# C0/C1 controls, line/paragraph separators, bidi overrides and isolates, BOM: none belong in an offer
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ufeff]")
_CONTROL_BUT_NEWLINE = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ufeff]")


def _text(field: str, value: str, limit: int, *, required: bool, newlines: bool = False) -> str:
    if required and not value.strip():
        raise OfferRejected(f"{field}: empty")
    if len(value) > limit:
        raise OfferRejected(f"{field}: {len(value)} characters, more than {limit}")
    if (_CONTROL_BUT_NEWLINE if newlines else _CONTROL).search(value):
        raise OfferRejected(f"{field}: contains control or bidi-override characters")
    if _MARKUP.search(value):
        raise OfferRejected(f"{field}: looks like markup; offers are plain text")
    return value.strip()


def _number(field: str, value: Optional[float], lo: float, hi: float) -> Optional[float]:
    if value is None:
        return None
    if not (math.isfinite(value) and lo <= value <= hi):
        raise OfferRejected(f"{field}: {value!r} is not within [{lo}, {hi}]")
    return float(value)


def check_offer(offer: m.Offer, now: float, limits: OfferLimits, creative_exists: Callable[[str], bool]) -> Card:
    """Validate ``offer`` at wall time ``now``; the card to show, with its remaining TTL.

    Raises:
        OfferRejected: a field is malformed, hostile or out of range, or the offer has expired.
    """
    if not _OFFER_ID.match(offer.offer_id):
        raise OfferRejected("offer_id: not 1-64 letters, digits or . _ : -")
    if is_test_offer(offer.offer_id):
        raise OfferRejected(f"offer_id: the prefix {TEST_PREFIX!r} is reserved for maintenance test cards")
    zone = _text("zone", offer.zone, 64, required=True)
    sku = _text("sku", offer.sku, 64, required=True)
    title = _text("title", offer.title, limits.title_max, required=True)
    body = _text("body", offer.body, limits.body_max, required=False, newlines=True)
    price = _number("price", offer.price, 0.0, 1e7)
    discount = _number("discount_pct", offer.discount_pct, 0.0, 100.0)
    _number("relevance", offer.relevance, 0.0, 1.0)
    if not (math.isfinite(offer.ttl_s) and offer.ttl_s > 0):
        raise OfferRejected(f"ttl_s: {offer.ttl_s!r} is not a positive number of seconds")
    if not math.isfinite(offer.issued_at):
        raise OfferRejected("issued_at: not a finite time")
    if offer.issued_at > now + limits.future_skew_s:
        raise OfferRejected(f"issued_at: {offer.issued_at - now:.1f} s in the future (clock fault?)")
    remaining = min(offer.issued_at + offer.ttl_s - now, offer.ttl_s, limits.ttl_max_s)
    if remaining <= 0:
        raise OfferRejected(f"ttl_s: expired {-remaining:.1f} s ago")
    image, missing = None, False
    if offer.image is not None:
        problem = creative_name_problem(offer.image)
        if problem or not offer.image.lower().endswith(IMAGE_EXTENSIONS):
            raise OfferRejected(f"image: {problem or 'not an image file name'}")
        if creative_exists(offer.image):
            image = offer.image
        else:
            missing = True
    return Card(offer.offer_id, zone, sku, title, body, price, discount, image, missing, remaining)


def route(zone: str, displays: Iterable[Display]) -> tuple[str, ...]:
    """The displays that show offers for ``zone`` (those listing it, or ``"*"``)."""
    return tuple(d.id for d in displays if zone in d.zones or "*" in d.zones)

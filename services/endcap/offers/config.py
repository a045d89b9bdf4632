"""``[offers]``: zones and their candidates, the offer catalogue, dayparts, caps, gates and the holdout.

Every field is documented and has a default except ``model_path``; unknown keys are errors;
validation never does I/O (the timezone name is resolved when the service starts).
"""
from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Optional

import msgspec
from msgspec import Meta

from ..core.config import Strict

Fraction = Annotated[float, Meta(ge=0.0, le=1.0)]
NonNeg = Annotated[float, Meta(ge=0.0)]
Positive = Annotated[float, Meta(gt=0.0)]
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_HHMM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")
_CREATIVE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
ZONE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$")
"""What a ``[vision]`` zone id may be; an offers zone must name one of them."""


def minutes(hhmm: str) -> int:
    return int(hhmm[:2]) * 60 + int(hhmm[3:])


class Daypart(Strict):
    name: str
    start: str
    """Local time ``HH:MM`` the daypart begins (inclusive)."""
    end: str
    """Local time ``HH:MM`` it ends (exclusive); an end before the start wraps past midnight."""
    days: list[str] = msgspec.field(default_factory=lambda: list(DAYS))
    """Weekdays it applies to (``mon`` … ``sun``; the start's weekday for a wrapping daypart)."""

    def __post_init__(self) -> None:
        for key in ("start", "end"):
            if not _HHMM.match(getattr(self, key)):
                raise ValueError(f"{key}: {getattr(self, key)!r} is not HH:MM")
        if self.start == self.end:
            raise ValueError("end: equals start (an empty daypart)")
        bad = [d for d in self.days if d not in DAYS]
        if bad or not self.days:
            raise ValueError(f"days: {bad or 'empty'}; use {', '.join(DAYS)}")


class CatalogueEntry(Strict):
    """One offer template: for one SKU, or for every SKU of a category (a SKU entry wins over its category's)."""

    sku: Optional[str] = None
    category: Optional[str] = None
    title: str = "{name}"
    """Plain text; ``{name}`` is replaced by the POS catalogue's item name."""
    body: str = ""
    image: Optional[str] = None
    """A creative name known to signage (never a URL or path)."""
    discount_pct: NonNeg = 0.0
    valid_from: Optional[datetime] = None
    """First instant the offer may be shown (TOML offset date-time); none: already valid."""
    valid_until: Optional[datetime] = None
    """Instant it stops (exclusive); none: open-ended."""
    dayparts: list[str] = []
    """Names of ``[[offers.dayparts]]`` it may be shown in; empty: any time the zone allows."""

    def __post_init__(self) -> None:
        if (self.sku is None) == (self.category is None):
            raise ValueError("sku: give exactly one of sku or category")
        if self.image is not None and not _CREATIVE.match(self.image):
            raise ValueError(f"image: {self.image!r} must be a creative name (letters, digits, . _ -), not a URL or path")
        for key in ("valid_from", "valid_until"):
            v = getattr(self, key)
            if v is not None and v.tzinfo is None:
                raise ValueError(f"{key}: needs a UTC offset (e.g. 2025-01-01T00:00:00Z)")
        if self.valid_from and self.valid_until and self.valid_until <= self.valid_from:
            raise ValueError("valid_until: not after valid_from")
        if not self.title.strip():
            raise ValueError("title: empty")


class Zone(Strict):
    """A shelf zone seen by vision (``vision.zone`` events name it) with one screen."""

    skus: list[str] = []
    categories: list[str] = []
    """POS catalogue categories whose SKUs are candidates here (resolved over req/rep ``catalogue``)."""
    dayparts: list[str] = []
    """Names of dayparts this zone's screen shows offers in; empty: always."""

    def __post_init__(self) -> None:
        if not self.skus and not self.categories:
            raise ValueError("no candidates: give skus or categories (a non-empty list of either)")
        for key in ("skus", "categories"):
            values = getattr(self, key)
            if any(not v.strip() for v in values):
                raise ValueError(f"{key}: {values!r} has an empty name")
            if len(set(values)) != len(values):
                raise ValueError(f"{key}: {values!r} names one twice")


class OffersConfig(Strict):
    model_path: str
    """Directory of the active model package (a symlink to it is fine; it is re-resolved on every check)."""
    timezone: str = "UTC"
    """IANA zone of the store, for dayparts."""
    zones: dict[str, Zone] = {}
    catalogue: list[CatalogueEntry] = []
    dayparts: list[Daypart] = []
    confidence_gate: Fraction = 0.85
    """Vision confidence (a real shopper really dwelling) a ``dwell`` event needs before any offer."""
    min_dwell_s: NonNeg = 2.0
    min_focus: Fraction = 0.0
    relevance_threshold: Fraction = 0.10
    """Calibrated probability of purchase the best candidate needs (docs/offers.md)."""
    max_offers_per_trip: Annotated[int, Meta(ge=1)] = 2
    shopper_gap_s: NonNeg = 60.0
    """Least time between two offers to the same shopper (trip)."""
    screen_gap_s: NonNeg = 15.0
    """Least time between two offers on one zone's screen."""
    sku_cooldown_s: NonNeg = 600.0
    """Least time before the same SKU is offered again on the same screen (never twice in one trip)."""
    offer_ttl_s: Positive = 12.0
    max_discount_pct: Annotated[float, Meta(ge=0.0, le=90.0)] = 30.0
    """No catalogue entry may exceed this discount (checked at load)."""
    holdout_fraction: Annotated[float, Meta(ge=0.0, lt=1.0)] = 0.10
    """Share of shoppers (loyalty id, else track) whose eligible triggers get no offer, for honest lift."""
    holdout_salt: str = "endcap-holdout-1"
    """Changing it re-draws who is held out."""
    trip_timeout_s: Positive = 1800.0
    """A shopper unseen this long has ended the trip (caps and zones visited start afresh)."""
    attribution_window_s: Positive = 7200.0
    """A basket of the shopper within this long after the trigger counts for conversion."""
    stock_max_age_s: Positive = 120.0
    """A stock level older than this (since offers last heard it from pos) is stale: no offer."""
    stock_refresh_s: Positive = 30.0
    min_stock: NonNeg = 1.0
    """Units on hand a SKU needs to be offered."""
    history_timeout_ms: Annotated[int, Meta(gt=0)] = 300
    """Longest wait for pos to answer one ``baskets`` (loyalty history) request."""
    history_wait_ms: Annotated[int, Meta(ge=0)] = 150
    """Longest a decision waits for a history fetch still in flight (asked for at the trip's first
    event, so normally finished already); past it the shopper is decided as anonymous."""
    history_cache_s: Positive = 900.0
    model_poll_s: Positive = 2.0
    health_interval_s: Positive = 2.0
    rpc_timeout_ms: Annotated[int, Meta(gt=0)] = 2000

    def __post_init__(self) -> None:
        if not self.model_path:
            raise ValueError("model_path: empty")
        names = [d.name for d in self.dayparts]
        if len(set(names)) != len(names):
            raise ValueError("dayparts: names must be unique")
        for zname, z in self.zones.items():
            if not ZONE_ID.match(zname):
                raise ValueError(f"zones: zone id {zname!r} is not 1-32 letters, digits, '-' or '_' "
                                 "(it must equal a [vision] zone id)")
            for dp in z.dayparts:
                if dp not in names:
                    raise ValueError(f"zones.{zname}.dayparts: unknown daypart {dp!r} (not in [[offers.dayparts]])")
        seen: set[tuple[str, str]] = set()
        for i, e in enumerate(self.catalogue):
            if e.discount_pct > self.max_discount_pct:
                raise ValueError(f"catalogue: entry {i} discount {e.discount_pct} % exceeds max_discount_pct {self.max_discount_pct}")
            for dp in e.dayparts:
                if dp not in names:
                    raise ValueError(f"catalogue: entry {i} names unknown daypart {dp!r}")
            key = ("sku", e.sku) if e.sku is not None else ("category", e.category or "")
            if key in seen:
                raise ValueError(f"catalogue: entry {i} repeats {key[0]} {key[1]!r}")
            seen.add(key)

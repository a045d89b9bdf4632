"""The offer decision: one zone event in, at most one offer out, or a reason why not. Pure.

No I/O and no clock reads: the caller passes ``now`` (the event's time on the gateway clock), the
store's local weekday/minute (for dayparts), the stock it knows, the model and the shopper's
profile. ``TripState``/``ScreenState`` are plain state the caller keeps and updates with
``record``; they change only through this module.

Rules, in the order they are checked (``Decision.reason`` names the first that stops an offer):
1. the event is a ``dwell`` (``not_dwell``) with confidence >= the gate (``low_confidence``), dwell and
   focus above their minimums (``short_dwell``, ``low_focus``), in a configured zone (``unknown_zone``)
   whose dayparts include now (``outside_daypart``);
2. trip cap and shopper gap (``trip_cap``, ``shopper_gap``); the zone's screen is free (``screen_busy``);
   a model is loaded (``no_model``);
3. candidates, from the most relevant down (ties by SKU), the first that is known to the model
   (``unknown_sku``), has a catalogue entry valid now and in its dayparts (``no_active_offer``), is in
   stock - a level known, fresh (``stock_max_age_s``) and >= ``min_stock``; unknown or stale stock
   fails closed (``no_stock``) - and was not offered in this trip nor on this screen within the
   cool-down (``cooldown``); ``Decision.excluded`` counts the candidates passed over on the way;
4. that candidate's calibrated relevance reaches the threshold (``below_threshold``);
5. the shopper is in the holdout (``holdout``: eligible, recorded with the SKU it would have had), or
   the offer is made (``offered``).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Mapping, Optional

import numpy as np

from ..core import messages as m
from .config import DAYS, CatalogueEntry, OffersConfig, minutes
from .model import OfferModel, Profile


@dataclass(frozen=True)
class Item:
    """A candidate SKU as the POS catalogue describes it."""

    sku: str
    name: str
    category: str
    price: Optional[float] = None


@dataclass(frozen=True)
class StockFact:
    qty: Optional[float]  # None: pos does not know (never counted, stale feed): fail closed
    heard_at: float  # when offers last heard this level from pos (gateway clock)


@dataclass(frozen=True)
class LocalTime:
    weekday: int  # 0 = Monday
    minute: int  # minutes since local midnight

    @classmethod
    def of(cls, dt: datetime) -> "LocalTime":
        return cls(dt.weekday(), dt.hour * 60 + dt.minute)


@dataclass
class TripState:
    key: str
    started_at: float
    last_seen: float
    shopper_id: Optional[str] = None
    zones: list[str] = field(default_factory=list)  # in the order first visited
    offers: int = 0
    last_offer_at: Optional[float] = None
    skus: set[str] = field(default_factory=set)  # offered (or held out) in this trip


@dataclass
class ScreenState:
    last_offer_at: Optional[float] = None
    sku_at: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Decision:
    reason: str
    arm: Optional[str] = None  # treated | holdout, for eligible triggers only
    sku: Optional[str] = None  # the offered SKU, or the one a held-out shopper would have had
    relevance: Optional[float] = None
    offer: Optional[m.Offer] = None
    considered: int = 0
    excluded: dict[str, int] = field(default_factory=dict)  # candidates dropped, by reason

    @property
    def eligible(self) -> bool:
        return self.arm is not None


def trip_key(ev: m.ZoneEvent) -> str:
    """A trip is one loyalty id, or else one camera track."""
    return f"shopper:{ev.shopper_id}" if ev.shopper_id else f"track:{ev.camera}:{ev.track_id}"


def unit_hash(salt: str, key: str) -> float:
    """A uniform number in [0, 1) fixed by (salt, key): who is held out never depends on order or time."""
    digest = hashlib.sha256(f"{salt}\0{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0 ** 64


def holdout_arm(cfg: OffersConfig, ev: m.ZoneEvent) -> str:
    unit = f"shopper:{ev.shopper_id}" if ev.shopper_id else trip_key(ev)
    return "holdout" if unit_hash(cfg.holdout_salt, unit) < cfg.holdout_fraction else "treated"


class Engine:
    """Decisions for one config. Build once per config; ``decide`` is pure given its inputs."""

    def __init__(self, cfg: OffersConfig) -> None:
        self.cfg = cfg
        self._dayparts = {d.name: d for d in cfg.dayparts}
        self._by_sku = {e.sku: e for e in cfg.catalogue if e.sku is not None}
        self._by_category = {e.category: e for e in cfg.catalogue if e.category is not None}
        self._windows = {id(e): (e.valid_from.timestamp() if e.valid_from else None,
                                 e.valid_until.timestamp() if e.valid_until else None) for e in cfg.catalogue}
        self._memo: dict[tuple[int, str], tuple[list, np.ndarray]] = {}

    # --- time windows ------------------------------------------------------------------------------

    def in_daypart(self, name: str, t: LocalTime) -> bool:
        d = self._dayparts[name]
        s, e = minutes(d.start), minutes(d.end)
        if s < e:
            return DAYS[t.weekday] in d.days and s <= t.minute < e
        if t.minute >= s:  # wrapping daypart: the evening part belongs to today
            return DAYS[t.weekday] in d.days
        return t.minute < e and DAYS[(t.weekday - 1) % 7] in d.days

    def _any_daypart(self, names: list[str], t: LocalTime) -> bool:
        return not names or any(self.in_daypart(n, t) for n in names)

    def entry_for(self, item: Item) -> Optional[CatalogueEntry]:
        return self._by_sku.get(item.sku) or self._by_category.get(item.category)

    def _active(self, e: CatalogueEntry, now: float, t: LocalTime) -> bool:
        start, until = self._windows[id(e)]
        if start is not None and now < start:
            return False
        if until is not None and now >= until:
            return False
        return self._any_daypart(e.dayparts, t)

    # --- the decision ------------------------------------------------------------------------------

    def decide(self, ev: m.ZoneEvent, *, now: float, local: LocalTime, trip: TripState, screen: ScreenState,
               candidates: list[Item], stock: Mapping[str, StockFact], model: Optional[OfferModel],
               profile: Optional[Profile]) -> Decision:
        cfg = self.cfg
        if ev.kind != "dwell":
            return Decision("not_dwell")
        if ev.confidence < cfg.confidence_gate:
            return Decision("low_confidence")
        if ev.dwell_s < cfg.min_dwell_s:
            return Decision("short_dwell")
        if ev.focus < cfg.min_focus:
            return Decision("low_focus")
        zone = cfg.zones.get(ev.zone)
        if zone is None:
            return Decision("unknown_zone")
        if not self._any_daypart(zone.dayparts, local):
            return Decision("outside_daypart")
        if trip.offers >= cfg.max_offers_per_trip:
            return Decision("trip_cap")
        if trip.last_offer_at is not None and now - trip.last_offer_at < cfg.shopper_gap_s:
            return Decision("shopper_gap")
        if screen.last_offer_at is not None and now - screen.last_offer_at < cfg.screen_gap_s:
            return Decision("screen_busy")
        if model is None:
            return Decision("no_model")

        # relevance for the whole zone at once, then walk candidates from the most relevant down and stop
        # at the first that may be offered: the same choice as filter-then-argmax, without checking them all
        idx = self._zone_index(candidates, model)
        rel = model.relevance_idx(idx, profile)
        order = np.argsort(-np.nan_to_num(rel, nan=-1.0), kind="stable")  # candidates are in SKU order: ties by SKU
        excluded = {"unknown_sku": 0, "no_active_offer": 0, "no_stock": 0, "cooldown": 0}
        active: dict[int, bool] = {}
        for j in order.tolist():
            item = candidates[j]
            r = rel[j]
            if r != r:
                excluded["unknown_sku"] += 1
                continue
            e = self.entry_for(item)
            ok = e is not None and active.get(id(e))
            if ok is None:
                ok = active[id(e)] = self._active(e, now, local)
            if not ok:
                excluded["no_active_offer"] += 1
                continue
            fact = stock.get(item.sku)
            if fact is None or fact.qty is None or now - fact.heard_at > cfg.stock_max_age_s or fact.qty < cfg.min_stock:
                excluded["no_stock"] += 1
                continue
            last = screen.sku_at.get(item.sku)
            if item.sku in trip.skus or (last is not None and now - last < cfg.sku_cooldown_s):
                excluded["cooldown"] += 1
                continue
            r = float(r)
            if r < cfg.relevance_threshold:
                return Decision("below_threshold", sku=item.sku, relevance=r, considered=len(candidates), excluded=excluded)
            arm = holdout_arm(cfg, ev)
            if arm == "holdout":
                return Decision("holdout", arm, item.sku, r, None, len(candidates), excluded)
            return Decision("offered", arm, item.sku, r, self._offer(ev, now, item, e, r), len(candidates), excluded)
        reason = next((k for k in ("cooldown", "no_stock", "no_active_offer") if excluded[k]), "unknown_sku")
        return Decision(reason, considered=len(candidates), excluded=excluded)

    def _zone_index(self, candidates: list[Item], model: OfferModel) -> np.ndarray:
        """Model indices of a candidate list, remembered per (list, model): catalogue and model change rarely."""
        key = (id(candidates), model.digest)
        hit = self._memo.get(key)
        if hit is not None and hit[0] is candidates:  # the list is held: its id cannot be reused meanwhile
            return hit[1]
        if len(self._memo) > 256:
            self._memo.clear()
        idx = model.indices(it.sku for it in candidates)
        self._memo[key] = (candidates, idx)
        return idx

    def _offer(self, ev: m.ZoneEvent, now: float, item: Item, e: CatalogueEntry, rel: float) -> m.Offer:
        oid = hashlib.sha256(f"{ev.camera}|{ev.track_id}|{ev.zone}|{ev.ts!r}|{item.sku}".encode()).hexdigest()[:20]
        price = item.price
        discounted = None if price is None or not e.discount_pct else round(price * (1 - e.discount_pct / 100), 2)
        title = e.title.replace("{name}", item.name)
        return m.Offer(offer_id=oid, zone=ev.zone, sku=item.sku, title=title, ttl_s=self.cfg.offer_ttl_s, issued_at=now,
                       relevance=round(rel, 4), body=e.body.replace("{name}", item.name),
                       price=discounted if discounted is not None else price,
                       discount_pct=e.discount_pct or None, image=e.image)


def record(d: Decision, ev: m.ZoneEvent, now: float, trip: TripState, screen: ScreenState) -> None:
    """Apply a decision to the trip and screen state (the caps and cool-downs of later decisions).

    A holdout counts against the trip like an offer would, so both arms see the same later triggers.
    """
    trip.last_seen = max(trip.last_seen, now)
    if ev.zone not in trip.zones:
        trip.zones.append(ev.zone)
    if not d.eligible or d.sku is None:
        return
    trip.offers += 1
    trip.last_offer_at = now
    trip.skus.add(d.sku)
    if d.offer is not None:
        screen.last_offer_at = now
        screen.sku_at[d.sku] = now


def utc_local(now: float, tz) -> LocalTime:
    """Local weekday/minute of ``now`` in ``tz`` (a tzinfo; resolved by the caller)."""
    return LocalTime.of(datetime.fromtimestamp(now, timezone.utc).astimezone(tz))

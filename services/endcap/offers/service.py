"""The ``offers`` service: zone events in, offers out, every decision recorded for the lift report.

Threads: the main thread receives ``vision.zone``, ``pos.stock`` and ``pos.basket``, decides (pure
``engine``), publishes ``offers.offer`` and then records the decision; ``PosLink`` keeps catalogue,
stock and shopper histories fresh over req/rep; ``ModelWatcher`` hot-swaps the model package.
Publishes ``offers.health``: ok while a model is loaded and pos answers (stock refreshes) or its
events flow. Events older than ``MAX_EVENT_AGE_S`` on the gateway clock are not acted on (a
reconnecting subscriber may hand over stale ones).
"""
from __future__ import annotations

import gc
import logging
import time
from collections import deque
from typing import Optional

from ..core import messages as m
from ..core.bus import Publisher, Subscriber
from ..core.errors import BusTimeout, ConfigError, EndcapError, IntegrityError
from ..core.health import HealthPublisher, HealthState
from ..core.runner import ServiceContext
from .config import OffersConfig
from .engine import Engine, ScreenState, TripState, record, trip_key, utc_local
from .link import ModelWatcher, PosLink
from .store import RecordWriter

log = logging.getLogger(__name__)
MAX_EVENT_AGE_S = 5.0
SWEEP_S = 5.0


def _timezone(name: str):
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as e:
        raise ConfigError(f"offers.timezone: unknown zone {name!r}", [f"offers.timezone: unknown zone {name!r}"]) from e


class Offers:
    """The decision loop's state; one instance per service run."""

    def __init__(self, ctx: ServiceContext) -> None:
        self.cfg: OffersConfig = ctx.config
        self.tz = _timezone(self.cfg.timezone)
        self.engine = Engine(self.cfg)
        self.health = HealthState("offers", stale_after_s=max(10.0, 3 * self.cfg.stock_refresh_s))
        self.watcher = ModelWatcher(self.cfg.model_path, self.health, self.cfg.model_poll_s, ctx.stop)
        self.link = PosLink(self.cfg, ctx.paths.rpc_address("pos"), self.health, lambda: self.watcher.model, ctx.stop)
        self.store = RecordWriter(ctx.state_dir() / "offers.db")
        self.trips: dict[str, TripState] = {}
        self.screens: dict[str, ScreenState] = {}
        self.pub: Optional[Publisher] = None
        self._latencies: deque[float] = deque(maxlen=1000)

    def on_zone(self, ev: m.ZoneEvent, now: float) -> None:
        cfg = self.cfg
        key = trip_key(ev)
        trip = self.trips.get(key)
        if trip is None or now - trip.last_seen > cfg.trip_timeout_s:
            trip = self.trips[key] = TripState(key, now, now, ev.shopper_id)
        if ev.shopper_id:
            self.link.profile(ev.shopper_id, self._digest(), now)  # warm the history cache from the first event
        if ev.kind != "dwell":
            trip.last_seen = now
            if ev.zone not in trip.zones and ev.zone in cfg.zones:
                trip.zones.append(ev.zone)
            return
        if now - ev.ts > MAX_EVENT_AGE_S:
            self.health.count("stale_events")
            return
        model = self.watcher.model
        profile, context = self.link.profile(ev.shopper_id, model.digest if model else None, now,
                                             wait_s=cfg.history_wait_ms / 1000)
        screen = self.screens.setdefault(ev.zone, ScreenState())
        d = self.engine.decide(ev, now=now, local=utc_local(now, self.tz), trip=trip, screen=screen,
                               candidates=self.link.zone_items.get(ev.zone, []), stock=self.link.stock, model=model,
                               profile=profile)
        if d.offer is not None:
            self.pub.publish("offers.offer", d.offer)
        latency_ms = (time.time() - ev.ts) * 1000  # event stamped by vision → decision out: bus hop included
        self._latencies.append(latency_ms)
        record(d, ev, now, trip, screen)
        self.health.count(f"reason.{d.reason}")
        self.health.count("decisions")
        did = d.offer.offer_id if d.offer else f"{key}:{ev.zone}:{ev.ts!r}"
        self.store.decision(did, now, ev.zone, ev.camera, ev.track_id, ev.shopper_id, key, d.reason, d.arm, d.sku,
                                   d.relevance, context, d.offer.offer_id if d.offer else None,
                                   model.version if model else None, latency_ms)
        if d.eligible:
            log.debug("%s %s zone %s sku %s relevance %.3f (%s)", d.reason, key, ev.zone, d.sku, d.relevance or 0, context)

    def _digest(self) -> Optional[str]:
        model = self.watcher.model
        return model.digest if model else None

    def on_basket(self, b: m.Basket, now: float) -> None:
        if not b.shopper_id:
            return
        lines = [(ln.sku, ln.qty, ln.price) for ln in b.lines if ln.type == "sale"]
        self.store.basket(f"{b.store}/{b.txn_id}", b.shopper_id, now, b.business_ts, b.status, lines)
        self.link.forget(b.shopper_id)
        self.trips.pop(f"shopper:{b.shopper_id}", None)  # checked out: the trip is over
        self.health.count("baskets")

    def latency_counters(self) -> None:
        """p50/p99 of the last 1,000 decisions' latency (ms), for health and the maintenance page."""
        if self._latencies:
            vals = sorted(self._latencies)
            self.health.set("decision_p50_ms", round(vals[len(vals) // 2], 3))
            self.health.set("decision_p99_ms", round(vals[min(len(vals) - 1, int(0.99 * len(vals)))], 3))

    def sweep(self, now: float) -> None:
        for key in [k for k, t in self.trips.items() if now - t.last_seen > self.cfg.trip_timeout_s]:
            del self.trips[key]
        self.health.set("trips", len(self.trips))
        self.latency_counters()


def main(ctx: ServiceContext) -> None:
    svc = Offers(ctx)
    cfg = svc.cfg
    svc.watcher.check()  # the active model before READY; a refused or missing one: no offers, health says why
    if svc.watcher.model is None:
        log.error("no usable model at %s: no offers until one is installed", cfg.model_path)
        svc.health.failure(IntegrityError(f"no usable model at {cfg.model_path}"), time.time())
    svc.pub = Publisher(ctx.paths.pub_address("offers"), "offers")
    health_pub = HealthPublisher(svc.health, svc.pub, cfg.health_interval_s)
    sub = Subscriber([ctx.paths.pub_address("vision"), ctx.paths.pub_address("pos")],
                     ["vision.zone", "pos.stock", "pos.basket"], "offers", recv_timeout_ms=200)
    svc.watcher.start()
    svc.link.start()
    gc.freeze()  # start-up objects (the model's tables) leave the collector's scans: shorter pauses
    ctx.ready(f"model {svc.watcher.model.version if svc.watcher.model else 'none'}, {len(cfg.zones)} zones")
    next_sweep = time.time() + SWEEP_S
    try:
        while not ctx.stop.is_set():
            ctx.alive()
            try:
                msg = sub.recv()
            except BusTimeout:
                msg = None
            now = time.time()
            if msg is not None:
                if msg.topic == "vision.zone":
                    svc.on_zone(msg.body, now)
                elif msg.topic == "pos.stock":
                    svc.link.heard(msg.body.levels, now)
                    if svc.watcher.model is not None:
                        svc.health.success(now)
                elif msg.topic == "pos.basket":
                    svc.on_basket(msg.body, now)
            if not svc.store.alive():
                raise EndcapError(f"the decision recorder stopped: {svc.store.failed!r}", code="recorder")
            if now >= next_sweep:
                svc.sweep(now)
                next_sweep = now + SWEEP_S
            if svc.watcher.model is None:
                svc.health.set("model_loaded", 0)
            health_pub.maybe_publish(now)
    finally:
        sub.close()
        svc.link.join()
        svc.watcher.join()
        svc.pub.close()
        svc.store.close()

"""Simulated shoppers: what vision would publish while real people walk a store (dev hosts only).

Responsibility: from real baskets (Complete Journey, store 367 by default) plan trips - the zones whose
categories the basket touches, plus the odd browse - and publish ``vision.zone`` events on the vision
socket (``paths.pub_address("vision")``) until the real vision service exists. Two modes:

- ``Replay`` (the end-to-end test and ``python -m endcap.sim.shoppers replay``): the store's earlier
  baskets become POS history, then each held-out basket is one trip, live: zone events, the offers
  service's decision, then the basket is written to the POS database through ``sim.writer`` with the
  gateway's clock. A shopper who was shown an offer adds its SKU with probability ``accept`` (the
  injected effect the lift report should find); held-out shoppers see nothing and buy what they bought.
- ``follow`` (``endcap run``): shadows the running replay simulator, one trip per basket it is about to
  write, without writing anything (the baskets are history: the measured lift is ~0, by design).

Invariants: trips and their events depend only on the seed and the data (never on timing); a trip's
events are published before its basket is written; the replay waits on conditions (a decision
recorded, a basket received), never on fixed sleeps.
"""
from __future__ import annotations

import argparse
import math
import random
import sqlite3
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

from endcap.core import messages as m
from endcap.sim.dataset import Basket, StoreData

TRIP_ID_OFFSET = 3_000_000_000  # sale ids of live trips: clear of replay (i + 1) and returns (1e9 + i)


@dataclass(frozen=True)
class Visit:
    zone: str
    dwell_s: float
    focus: float
    confidence: float


@dataclass(frozen=True)
class Trip:
    basket: Basket
    shopper_id: Optional[str]
    track_id: int
    visits: tuple[Visit, ...]


def basket_weeks(store_id: int) -> dict[int, int]:
    """basket_id → Complete Journey week, for one store."""
    import pyarrow.parquet as pq

    from endcap.sim.dataset import data_dir

    t = pq.read_table(str(data_dir().joinpath("transactions.parquet")), columns=["basket_id", "week"],
                      filters=[("store_id", "==", int(store_id))])
    return dict(zip(t["basket_id"].to_pylist(), t["week"].to_pylist()))


def plan_trip(rng: random.Random, basket: Basket, category_of: dict[int, str], zones: dict[str, frozenset[str]],
              track_id: int, *, browse_p: float = 0.3, low_conf_p: float = 0.1, anonymous_p: float = 0.0) -> Trip:
    """Zones whose categories the basket holds (in random order), plus one browse with ``browse_p``."""
    cats = {category_of.get(ln.item_id, "") for ln in basket.lines}
    visit = [z for z, zc in sorted(zones.items()) if zc & cats]
    others = [z for z in sorted(zones) if z not in visit]
    if others and rng.random() < browse_p:
        visit.append(rng.choice(others))
    rng.shuffle(visit)
    visits = []
    for z in visit:
        dwell = min(60.0, max(0.5, rng.lognormvariate(math.log(6.0), 0.7)))  # median 6 s, long tail
        conf = rng.uniform(0.5, 0.85) if rng.random() < low_conf_p else rng.uniform(0.86, 0.99)
        visits.append(Visit(z, round(dwell, 2), round(rng.uniform(0.3, 1.0), 2), round(conf, 3)))
    anonymous = rng.random() < anonymous_p
    return Trip(basket, None if anonymous else str(basket.customer_id), track_id, tuple(visits))


def events(trip: Trip, camera: str, now: float) -> list[m.ZoneEvent]:
    """enter, dwell and exit per visit, time-stamped ``now`` (the trip is replayed faster than life)."""
    out = []
    for v in trip.visits:
        for kind, dwell in (("enter", 0.0), ("dwell", v.dwell_s), ("exit", v.dwell_s)):
            out.append(m.ZoneEvent(camera, v.zone, trip.track_id, kind, dwell, v.focus, v.confidence, now, trip.shopper_id))
    return out


def zone_categories(zones_cfg) -> dict[str, frozenset[str]]:
    return {name: frozenset(z.categories) for name, z in zones_cfg.items()}


def prepare_history(source, data: StoreData, seed: int = 1) -> "Simulator":  # noqa: F821
    """Write the store's catalogue, stock and history baskets (as the replay simulator does, no faults)."""
    from endcap.sim.replay import Simulator

    sim = Simulator(source, data, faults=(), seed=seed)
    sim.prepare(reset=True)
    sim.run()
    return sim


@dataclass
class Stats:
    trips: int = 0
    offers: list[tuple[str, str, str, float]] = field(default_factory=list)  # (shopper, zone, sku, relevance) seen on the bus
    accepted: int = 0  # offers whose SKU the shopper added because of it (the injected effect)
    treated_exposures: int = 0


class Replay:
    """Live trips against running pos + offers services, written into the POS database ``source``."""

    def __init__(self, source, sim, offers_db: Path, vision_pub, offers_sub, *, camera: str = "cam-1",
                 accept: float = 0.0, seed: int = 7, timeout_s: float = 10.0) -> None:
        self.source, self.sim, self.offers_db = source, sim, Path(offers_db)
        self.pub, self.sub, self.camera = vision_pub, offers_sub, camera
        self.accept, self.rng, self.timeout_s = accept, random.Random(f"{seed}:accept"), timeout_s
        self.prices = {i.item_id: i.unit_price for i in sim.data.items}
        self.stats = Stats()
        self._next_sale = TRIP_ID_OFFSET

    def _count(self, sql: str) -> int:
        deadline = time.monotonic() + self.timeout_s
        while True:
            try:
                db = sqlite3.connect(f"file:{self.offers_db}?mode=ro", uri=True, timeout=1)
                try:
                    return int(db.execute(sql).fetchone()[0])
                finally:
                    db.close()
            except sqlite3.OperationalError:  # the service has not created its record yet
                if time.monotonic() > deadline:
                    raise
                threading.Event().wait(0.01)

    def _wait(self, sql: str, want: int, what: str) -> None:
        deadline = time.monotonic() + self.timeout_s
        while self._count(sql) < want:
            if time.monotonic() > deadline:
                raise TimeoutError(f"offers did not record {what} within {self.timeout_s} s")
            threading.Event().wait(0.002)

    def run_trip(self, trip: Trip) -> None:
        from endcap.core.errors import BusTimeout
        from endcap.sim import writer

        dwells = len(trip.visits)
        evs = events(trip, self.camera, time.time())
        # one zone at a time, as the shopper walks: a burst beyond the publisher's queue (16 messages per
        # subscriber in NNG) would lose the oldest events, and pub/sub is lossy by design
        for k in range(dwells):
            before = self._count("SELECT COUNT(*) FROM decisions")
            for ev in evs[3 * k:3 * k + 3]:
                self.pub.publish("vision.zone", ev)
            self._wait("SELECT COUNT(*) FROM decisions", before + 1, f"the decision at {trip.visits[k].zone}")
        db = sqlite3.connect(f"file:{self.offers_db}?mode=ro", uri=True)
        try:
            made = db.execute("SELECT offer_id, sku, arm FROM decisions WHERE rowid > 0 ORDER BY ts DESC LIMIT ?", (dwells,)).fetchall()
        finally:
            db.close()
        offered = {oid: sku for oid, sku, arm in made if oid}
        self.stats.treated_exposures += sum(1 for _, _, arm in made if arm == "treated")
        seen: list[str] = []
        deadline = time.monotonic() + self.timeout_s
        while len(seen) < len(offered) and time.monotonic() < deadline:  # what signage would show
            try:
                msg = self.sub.recv()
            except BusTimeout:
                continue
            if msg.body.offer_id in offered:
                seen.append(msg.body.offer_id)
                self.stats.offers.append((trip.shopper_id or "", msg.body.zone, msg.body.sku, msg.body.relevance))
        lines = [(ln.line, ln.item_id, ln.quantity, ln.unit_price) for ln in trip.basket.lines]
        have = {ln.item_id for ln in trip.basket.lines}
        for sku in offered.values():
            item = int(sku)
            if item not in have and self.rng.random() < self.accept:
                lines.append((len(lines) + 1, item, 1, self.prices.get(item, 1.0)))
                have.add(item)
                self.stats.accepted += 1
        now_us = int(time.time() * 1e6)
        sale = self._next_sale
        self._next_sale += 1
        before_b = self._count("SELECT COUNT(*) FROM baskets")
        writer.insert_sale(self.source, sale, now_us, now_us, trip.basket.customer_id, lines)
        writer.insert_movements(self.source, [(it, -q, f"POS {sale}") for _, it, q, _ in lines], now_us)
        self.source.commit()
        if trip.shopper_id:  # the basket must be attributable before the shopper's next trip
            self._wait("SELECT COUNT(*) FROM baskets", before_b + 1, f"basket {sale}")
        self.stats.trips += 1


def follow(root: str, source_url: str, store: int, seed: int, stop: threading.Event, camera: str = "cam-1") -> int:
    """Shadow a running replay: one trip per basket it is about to write. Returns trips published."""
    from endcap.core.bus import Publisher
    from endcap.core.config import load
    from endcap.core.paths import Paths
    from endcap.gateway import config_schema
    from endcap.sim.dataset import load_store

    paths = Paths.under(root)
    cfg = load(paths.config_file, config_schema())
    if getattr(cfg, "offers", None) is None:
        print("shoppers: no [offers] section in the config: nothing to simulate", file=sys.stderr)
        return 0
    zones = zone_categories(cfg.offers.zones)
    data = load_store(store)
    category_of = {i.item_id: i.category for i in data.items}
    rng = random.Random(f"{seed}:follow")
    path = source_url[len("sqlite://"):]
    done, published = -1, 0
    with Publisher(paths.pub_address("vision"), "sim-shoppers") as pub:
        while not stop.wait(0.05):
            try:
                db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=1)
                written = db.execute("SELECT COALESCE(MAX(sale_id), 0) FROM ospos_sales WHERE sale_id < 1000000000").fetchone()[0]
                db.close()
            except sqlite3.Error:
                continue
            for i in range(max(done + 1, written), min(written + 2, len(data.baskets))):
                trip = plan_trip(rng, data.baskets[i], category_of, zones, track_id=i + 1, anonymous_p=0.3)
                evs = events(trip, camera, time.time())
                for k in range(0, len(evs), 3):  # a zone at a time, paced: NNG drops the oldest of a long burst
                    for ev in evs[k:k + 3]:
                        pub.publish("vision.zone", ev)
                    stop.wait(0.01)
                done, published = i, published + 1
    return published


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m endcap.sim.shoppers", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="mode", required=True)
    f = sub.add_parser("follow", help="shadow the replay simulator of `endcap run`")
    f.add_argument("--root", required=True)
    f.add_argument("--source", required=True, help="sqlite:///ABS/PATH.db the replay writes")
    f.add_argument("--store", type=int, default=367)
    f.add_argument("--seed", type=int, default=1)
    args = p.parse_args(argv)
    stop = threading.Event()
    import signal

    for s in (signal.SIGINT, signal.SIGTERM):
        signal.signal(s, lambda *_: stop.set())
    from endcap.core.systemd import Notifier

    Notifier().ready("following the replay")
    n = follow(args.root, args.source, args.store, args.seed, stop)
    print(f"shoppers: {n} trips published")
    return 0


if __name__ == "__main__":
    sys.exit(main())

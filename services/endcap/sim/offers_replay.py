"""End-to-end offers replay on a dev host: held-out shoppers dwell in zones, offers are shown or held
out, baskets are checked out, and the lift report is read back (``python -m endcap.sim.offers_replay``).

Responsibility: set up a throwaway gateway root - a POS database with store 367's weeks 1-44 as
history, fresh counts for the zone SKUs (a few forced to zero), an ``[offers]`` config whose zones are
the store's busiest categories - start the real pos and offers services, run ``shoppers.Replay`` over
held-out baskets (weeks 45-53), stop the services and return what happened (offers shown, the
injected effect, the lift report). The model package is the caller's (a directory).
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Optional, Sequence


def busiest_zones(held, category_of: dict[int, str], known: set[str], n: int) -> dict[str, str]:
    """zone name → category: the categories held-out baskets buy most model-known SKUs from."""
    c = Counter(category_of[ln.item_id] for b in held for ln in b.lines if str(ln.item_id) in known)
    return {f"zone-{i + 1}": cat for i, (cat, _) in enumerate(c.most_common(n))}


def config_text(pos_url: str, model_dir: str, zones: dict[str, str], *, holdout: float, threshold: float) -> str:
    lines = ["[core]", 'log_level = "WARNING"', "[pos]", 'store_id = "s367"', "poll_interval_s = 0.2",
             "stock_count_max_age_s = 1e10", "[pos.sql]", f'url = "{pos_url}"', "[offers]", f'model_path = "{model_dir}"',
             f"holdout_fraction = {holdout}", f"relevance_threshold = {threshold}", "shopper_gap_s = 0", "screen_gap_s = 0",
             "sku_cooldown_s = 0", "max_offers_per_trip = 2", "health_interval_s = 0.3", "stock_refresh_s = 2"]
    for z, cat in zones.items():
        lines += [f"[offers.zones.{z}]", f"categories = {json.dumps([cat])}"]
    for cat in zones.values():
        lines += ["[[offers.catalogue]]", f"category = {json.dumps(cat)}", 'title = "{name}"', "discount_pct = 10"]
    return "\n".join(lines) + "\n"


def run(root: Path, model_dir: Path, *, trips: int = 200, accept: float = 0.5, holdout: float = 0.3, threshold: float = 0.05,
        seed: int = 7, n_zones: int = 6, n_out_of_stock: int = 2, log=print) -> dict:
    """Run the replay in ``root`` (created) and return its outcome (see module doc)."""
    import random

    from endcap.core.bus import Publisher, Subscriber
    from endcap.core.paths import Paths
    from endcap.launcher import ServiceProcess, wait_health
    from endcap.offers.model import load_model
    from endcap.offers.store import lift_report
    from endcap.sim import writer
    from endcap.sim.dataset import load_store
    from endcap.sim.shoppers import Replay, basket_weeks, plan_trip, prepare_history
    from endcap.sim.sourcedb import open_source
    from dataclasses import replace

    paths = Paths.under(root)
    paths.ensure()
    paths.config_dir.mkdir(parents=True, exist_ok=True)
    data = load_store(367)
    week = basket_weeks(367)
    hist = replace(data, baskets=tuple(b for b in data.baskets if week[b.basket_id] <= 44))
    held = [b for b in data.baskets if week[b.basket_id] >= 45]
    category_of = {i.item_id: i.category for i in data.items}
    model = load_model(model_dir)
    zones = busiest_zones(held, category_of, set(model.skus), n_zones)
    url = f"sqlite:///{root}/ospos.db"
    src = open_source(url)
    prepare_history(src, hist, seed=seed)
    # a fresh count for every zone SKU (the ERP's daily count), the most bought ones forced to zero
    zone_cats = set(zones.values())
    zone_items = sorted(i.item_id for i in data.items if i.category in zone_cats)
    bought = Counter(ln.item_id for b in held for ln in b.lines if ln.item_id in set(zone_items) and str(ln.item_id) in model.index)
    empty = [it for it, _ in bought.most_common(n_out_of_stock)]
    now_us = int(time.time() * 1e6)
    writer.update_counts(src, [(it, 0 if it in empty else 200) for it in zone_items], now_us)
    src.commit()
    paths.config_file.write_text(config_text(url, str(model_dir), zones, holdout=holdout, threshold=threshold))
    logs = root / "log"
    logs.mkdir(exist_ok=True)
    procs = []
    try:
        for name in ("pos", "offers"):
            procs.append(ServiceProcess.endcap(name, "service", name, "--root", str(root), log_path=logs / f"{name}.log").start())
            procs[-1].wait_ready(60)
        # the pos backfill publishes a basket per history basket: let that burst pass before the trips
        # start, so no zone event of a trip is crowded out of the (lossy) bus
        wait_health(paths, "pos", lambda h: h.counters.get("txns", 0) >= len(hist.baskets), timeout_s=120)
        # trips start once offers decides on today's counts: pos has read them, and offers refreshed since
        fresh = {str(it): 0.0 if it in empty else 200.0 for it in zone_items}
        read_at = _wait_pos_levels(paths, fresh, timeout_s=120)
        wait_health(paths, "offers", lambda h: h.ok and h.counters.get("zones_without_candidates", 1) == 0
                    and h.counters.get("stock_refreshed_at", 0) >= read_at, timeout_s=120)
        rng = random.Random(f"{seed}:trips")
        zc = {z: frozenset([c]) for z, c in zones.items()}
        with Publisher(paths.pub_address("vision"), "sim-shoppers") as pub, \
                Subscriber([paths.pub_address("offers")], ["offers.offer"], "sim-shoppers", recv_timeout_ms=200) as sub:
            rp = Replay(src, _Sim(data), paths.service_state("offers") / "offers.db", pub, sub, accept=accept, seed=seed)
            _connect(rp, pub, paths)
            t0 = time.monotonic()
            for i, b in enumerate(held[:trips]):
                rp.run_trip(plan_trip(rng, b, category_of, zc, track_id=10_000 + i))
            elapsed = time.monotonic() - t0
        # the services' own view at the end (stock known, feed state, reasons), for a report that explains itself
        health = {name: _health_now(paths, name) for name in ("pos", "offers")}
    finally:
        for p in reversed(procs):
            p.stop()
        src.close()
    report = lift_report(paths.service_state("offers") / "offers.db", 3600.0)
    offered = [o for o in rp.stats.offers]
    return {"root": str(root), "zones": zones, "trips": rp.stats.trips, "seconds": elapsed, "offers": offered,
            "accepted": rp.stats.accepted, "out_of_stock": [str(i) for i in empty],
            "offered_out_of_stock": [o for o in offered if o[2] in {str(i) for i in empty}], "lift": report,
            "health": health}


def _wait_pos_levels(paths, want: dict[str, float], timeout_s: float) -> float:
    """Ask pos for the levels of ``want``'s SKUs until they are ``want``; returns when (wall clock)."""
    from endcap.core import messages as m
    from endcap.core.bus import RpcClient
    from endcap.core.errors import BusError, RemoteError

    skus, got = sorted(want), {}
    deadline = time.monotonic() + timeout_s
    with RpcClient(paths.rpc_address("pos"), "sim-shoppers", timeout_ms=5000) as rpc:
        while time.monotonic() < deadline:
            try:
                got = {lv.sku: lv.qty for i in range(0, len(skus), 500)
                       for lv in rpc.call("stock", m.StockQuery(skus[i:i + 500]), m.StockReply).levels}
            except (BusError, RemoteError):
                got = {}
            if got == want:
                return time.time()
            threading.Event().wait(0.2)
    wrong = {k: got.get(k) for k in skus if got.get(k) != want[k]}
    raise RuntimeError(f"pos never reported the fresh counts within {timeout_s} s; differing: {dict(list(wrong.items())[:5])}")


def _health_now(paths, service: str) -> dict:
    """The next health message of ``service`` as a dict (``{"error": ...}`` when none came)."""
    from endcap.launcher import wait_health

    try:
        h = wait_health(paths, service, lambda h: True, timeout_s=10)
    except RuntimeError as e:
        return {"error": str(e)}
    err = h.last_error
    return {"ok": h.ok, "status": h.status, "last_error": f"{err.code}: {err.message}" if err else None,
            "counters": dict(h.counters)}


class _Sim:
    """What ``Replay`` needs of a simulator: the store's data (prices)."""

    def __init__(self, data) -> None:
        self.data = data


def _connect(rp, pub, paths, timeout_s: float = 20.0) -> None:
    """Publish a probe until offers has heard it: pub/sub drops what nobody hears yet."""
    import sqlite3

    from endcap.core import messages as m

    deadline = time.monotonic() + timeout_s
    db = paths.service_state("offers") / "offers.db"
    while time.monotonic() < deadline:
        pub.publish("vision.zone", m.ZoneEvent("probe", "probe", 0, "dwell", 5.0, 1.0, 1.0, time.time(), None))
        heard_by = time.monotonic() + 0.5
        while time.monotonic() < heard_by:  # wait on the condition: a decision recorded for the probe
            try:
                con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
                try:
                    if con.execute("SELECT COUNT(*) FROM decisions WHERE camera = 'probe'").fetchone()[0]:
                        return
                finally:
                    con.close()
            except sqlite3.OperationalError:
                pass  # the service has not created its record yet
            threading.Event().wait(0.01)
    raise RuntimeError("offers never heard the simulated vision socket")


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m endcap.sim.offers_replay", description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, help="model package directory (endcap-model train --out ...)")
    p.add_argument("--root", help="gateway root to create (default: a temp dir)")
    p.add_argument("--trips", type=int, default=660, help="held-out baskets to replay (store 367 has 660)")
    p.add_argument("--accept", type=float, default=0.5, help="probability a shown offer's SKU is added (the injected effect)")
    p.add_argument("--holdout", type=float, default=0.5)
    p.add_argument("--threshold", type=float, default=0.02)
    p.add_argument("--json", help="also write the outcome here")
    args = p.parse_args(argv)
    from endcap.offers.lift import format_report

    root = Path(args.root) if args.root else Path(tempfile.mkdtemp(prefix="ecr-"))
    out = run(root, Path(args.model).resolve(), trips=args.trips, accept=args.accept, holdout=args.holdout,
              threshold=args.threshold)
    print(f"root {out['root']}: {out['trips']} trips in {out['seconds']:.1f} s, zones {out['zones']}")
    print(f"offers shown {len(out['offers'])}; forced out of stock {out['out_of_stock']}, offered anyway: "
          f"{len(out['offered_out_of_stock'])}; injected: {out['accepted']} offered SKUs added to baskets "
          f"(true conversion lift {out['accepted'] / max(1, out['lift']['arms']['treated']['exposures']):.3f})")
    print(format_report(out["lift"]))
    print("reasons:", json.dumps(out["lift"]["reasons"], sort_keys=True))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())

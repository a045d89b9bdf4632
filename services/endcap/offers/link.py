"""What offers keeps from pos and from disk, refreshed in background threads: stock, catalogue,
shopper histories (req/rep to pos), and the active model (package directory).

Invariants:
- stock is fail-closed: a level is only as good as when offers last heard it (``StockFact.heard_at``);
  a refresh that fails leaves levels to age into staleness, it never invents one;
- each thread owns its own pynng sockets; the decision thread only reads dict entries and swaps
  whole references (the model, the catalogue), so it never waits on a lock, a socket or the disk;
- a model package is swapped in only after it verified and loaded completely; a refused one is
  remembered by (path, manifest stat) and not retried until it changes; the previous keeps serving.
"""
from __future__ import annotations

import logging
import os
import queue
import threading
import time
from pathlib import Path
from typing import Callable, Optional

from ..core import messages as m
from ..core.bus import RpcClient
from ..core.errors import BusError, EndcapError, IntegrityError, RemoteError
from ..core.health import HealthState
from .config import OffersConfig
from .engine import Item, StockFact
from .model import OfferModel, Profile, load_model

log = logging.getLogger(__name__)
STOCK_BATCH = 500


class PosLink:
    """Catalogue, stock and shopper histories from the pos service, in one background thread."""

    def __init__(self, cfg: OffersConfig, rpc_address: str, health: HealthState, model: Callable[[], Optional[OfferModel]],
                 stop: threading.Event) -> None:
        self.cfg, self._addr, self._health, self._model, self._stop = cfg, rpc_address, health, model, stop
        self.stock: dict[str, StockFact] = {}
        self.items: dict[str, Item] = {}  # every catalogue item offers may need
        self.zone_items: dict[str, list[Item]] = {z: [] for z in cfg.zones}
        self.profiles: dict[str, tuple[Optional[Profile], float, str]] = {}  # shopper → (profile, fetched at, model digest)
        self._pending: dict[str, threading.Event] = {}  # shopper → set when the fetch is done
        self._wanted: "queue.Queue[str]" = queue.Queue()
        self.catalogue_ok = False
        self._empty_zones: list[str] = []
        self.last_stock_ok: Optional[float] = None
        self._thread = threading.Thread(target=self._run, name="offers-pos", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def join(self) -> None:
        self._thread.join(timeout=5)

    # --- called from the decision thread ----------------------------------------------------------

    def heard(self, levels: list[m.StockLevel], now: float) -> None:
        for lv in levels:
            self.stock[lv.sku] = StockFact(lv.qty, now)

    def profile(self, shopper_id: Optional[str], digest: Optional[str], now: float,
                wait_s: float = 0.0) -> tuple[Optional[Profile], str]:
        """(profile, context) for a decision; asks for a fetch when missing, old or built for another model,
        and waits up to ``wait_s`` for a fetch in flight (normally done long before: the trip's first
        event asked for it seconds earlier)."""
        if not shopper_id:
            return None, "anonymous"
        for attempt in (0, 1):
            got = self.profiles.get(shopper_id)
            if got is not None and got[2] == digest and now - got[1] < self.cfg.history_cache_s:
                return got[0], "history" if got[0] is not None else "anonymous(empty history)"
            done = self.want(shopper_id)
            if attempt or wait_s <= 0 or not done.wait(wait_s):
                break
        return None, "anonymous(history pending)"

    def want(self, shopper_id: str) -> threading.Event:
        done = self._pending.get(shopper_id)
        if done is None:
            done = self._pending[shopper_id] = threading.Event()
            self._wanted.put(shopper_id)
        return done

    def forget(self, shopper_id: str) -> None:
        """The shopper's history changed (a new basket): fetch it afresh next time."""
        self.profiles.pop(shopper_id, None)

    # --- the thread -----------------------------------------------------------------------------------

    def _run(self) -> None:
        cfg = self.cfg
        with RpcClient(self._addr, "offers", timeout_ms=cfg.rpc_timeout_ms) as rpc, \
                RpcClient(self._addr, "offers", timeout_ms=cfg.history_timeout_ms) as hist:
            next_refresh, next_catalogue = 0.0, 0.0
            while not self._stop.is_set():
                now = time.time()
                if now >= next_catalogue:
                    next_catalogue = now + self._catalogue_again_in(self._catalogue(rpc))
                if self.catalogue_ok and now >= next_refresh:
                    next_refresh = now + (cfg.stock_refresh_s if self._refresh(rpc) else 1.0)
                try:
                    shopper = self._wanted.get(timeout=0.2)
                except queue.Empty:
                    continue
                self._fetch(hist, shopper)

    def _catalogue(self, rpc: RpcClient) -> bool:
        cats = sorted({c for z in self.cfg.zones.values() for c in z.categories})
        wanted = {s for z in self.cfg.zones.values() for s in z.skus}
        try:
            got = rpc.call("catalogue", m.CatalogQuery(cats, limit=50_000), m.CatalogReply).items if cats else []
            if wanted:
                known = {i.sku for i in got}
                got += [i for i in rpc.call("catalogue", m.CatalogQuery([], limit=50_000), m.CatalogReply).items
                        if i.sku in wanted and i.sku not in known]
        except (BusError, RemoteError) as e:
            self._health.failure(e, time.time())
            log.debug("catalogue from pos failed: %s", e)
            return False
        items = {i.sku: Item(i.sku, i.name, i.category, i.price) for i in got}
        by_cat: dict[str, list[Item]] = {}
        for it in items.values():
            by_cat.setdefault(it.category, []).append(it)
        zone_items = {}
        for name, z in self.cfg.zones.items():
            pick = {s: items.get(s, Item(s, s, "")) for s in z.skus}  # a SKU the POS does not list stays: stock decides
            for c in z.categories:
                pick.update({it.sku: it for it in by_cat.get(c, [])})
            zone_items[name] = sorted(pick.values(), key=lambda it: it.sku)
        self.items, self.zone_items = items, zone_items
        empty = sorted(z for z, its in zone_items.items() if not its)
        if empty and empty != self._empty_zones:
            log.warning("zones with no candidate SKU in the POS catalogue (check their categories): %s", ", ".join(empty))
        self._empty_zones = empty
        self._health.set("zones_without_candidates", len(empty))
        if not self.catalogue_ok:
            log.info("catalogue: %d candidate SKUs in %d zones", sum(len(v) for v in zone_items.values()), len(zone_items))
        self.catalogue_ok = True
        return True

    def _catalogue_again_in(self, ok: bool) -> float:
        """Seconds to the next catalogue read: soon after a failure, sooner while a zone has no candidate
        (a category the POS has not listed yet), else rarely (catalogues change slowly)."""
        if not ok:
            return 1.0
        return 30.0 if self._empty_zones else 300.0

    def _refresh(self, rpc: RpcClient) -> bool:
        skus = sorted({it.sku for items in self.zone_items.values() for it in items})
        try:
            for i in range(0, len(skus), STOCK_BATCH):
                levels = rpc.call("stock", m.StockQuery(skus[i:i + STOCK_BATCH]), m.StockReply).levels
                self.heard(levels, time.time())
        except (BusError, RemoteError) as e:
            self._health.failure(e, time.time())
            log.debug("stock refresh failed: %s", e)
            return False
        self.last_stock_ok = time.time()
        known = sum(1 for s in skus if (f := self.stock.get(s)) is not None and f.qty is not None)
        self._health.set("stock_known", sum(1 for f in self.stock.values() if f.qty is not None))
        self._health.set("zone_skus", len(skus))
        self._health.set("zone_stock_known", known)
        self._health.set("stock_refreshed_at", round(self.last_stock_ok, 3))
        if skus and not known:  # pos has not read its stock feed yet (or lost it): ask again soon, not in 30 s
            log.debug("stock refresh: pos knows no level of the %d zone SKUs yet", len(skus))
            return False
        if self._model() is not None:
            self._health.success(self.last_stock_ok)
        return True

    def _fetch(self, hist: RpcClient, shopper: str) -> None:
        model = self._model()
        try:
            if model is None:
                return
            baskets = hist.call("baskets", m.BasketQuery(shopper, model.history_limit), m.BasketsReply).baskets
            now = time.time()
            profile = model.profile(((b.business_ts, [ln.sku for ln in b.lines if ln.type == "sale" and ln.qty > 0]) for b in baskets
                                     if b.status == "completed"), now)
            self.profiles[shopper] = (profile, now, model.digest)
            self._health.set("profiles", len(self.profiles))
        except (BusError, RemoteError) as e:  # decide as anonymous; a later trigger asks again
            self._health.count("history_failed")
            log.debug("history of %s not fetched: %s", shopper, e)
        finally:
            done = self._pending.pop(shopper, None)
            if done is not None:
                done.set()


class ModelWatcher:
    """Loads the package at ``path`` at start and whenever it changes; keeps the previous on refusal."""

    def __init__(self, path: str, health: HealthState, poll_s: float, stop: threading.Event) -> None:
        self.path, self._health, self._poll, self._stop = Path(path), health, poll_s, stop
        self.model: Optional[OfferModel] = None
        self._seen: Optional[tuple] = None
        self._thread = threading.Thread(target=self._run, name="offers-model", daemon=True)

    def signature(self) -> Optional[tuple]:
        try:
            real = os.path.realpath(self.path)
            st = os.stat(os.path.join(real, "manifest.json"))
        except OSError:
            return None
        return (real, st.st_ino, st.st_mtime_ns, st.st_size)

    def check(self) -> bool:
        """Load the package if it changed since the last attempt. True when a new model was swapped in."""
        sig = self.signature()
        if sig is None or sig == self._seen:
            if sig is None and self._seen is not None:
                log.warning("model package %s disappeared; keeping the loaded model", self.path)
                self._seen = None
            return False
        self._seen = sig
        try:
            new = load_model(self.path)
        except IntegrityError as e:
            self._health.failure(e, time.time())
            self._health.count("model_refused")
            log.error("model package refused, %s: %s", "keeping the previous model" if self.model else "no model loaded", e)
            return False
        old = self.model
        self.model = new  # one reference swap: decisions in flight finish on the old model
        self._health.set("model_loaded", 1)
        self._health.count("model_loads")
        log.info("model %s %s loaded (%d SKUs)%s", new.name, new.version, len(new.skus),
                 f", replacing {old.version}" if old else "")
        return True

    def start(self) -> None:
        self._thread.start()

    def join(self) -> None:
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(self._poll):
            try:
                self.check()
            except EndcapError as e:  # pragma: no cover - load_model raises IntegrityError only
                self._health.failure(e, time.time())

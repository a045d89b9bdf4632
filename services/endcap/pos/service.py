"""The ``pos`` service: wires adapter, edge store, poller, bus and health together.

Threads: the main thread polls and publishes (and exits non-zero if an RPC thread died, so systemd
restarts the service); ``RPC_WORKERS`` RPC threads answer queries, each from its own read-only store
connection (SQLite WAL lets them read while the poller writes); a link probe runs on a thread of its own.
Publishes ``pos.basket`` (completed/cancelled transactions), ``pos.stock`` (levels of SKUs that moved)
and ``pos.health``. Answers ``stock``, ``baskets`` and ``catalogue`` over req/rep, and for the maintenance
page ``link`` and ``test_link`` (``link.py``).
"""
from __future__ import annotations

import logging
import threading
import time

from ..core import messages as m
from ..core.bus import Publisher, RpcServer, RpcThread, contained
from ..core.errors import EndcapError, UpstreamError
from ..core.health import HealthPublisher, HealthState
from ..core.runner import ServiceContext
from . import link, stock
from .adapters.api import PosAdapter
from .config import PosConfig
from .poller import PosPoller
from .store import EdgeStore

log = logging.getLogger(__name__)


def make_adapter(cfg: PosConfig, stop: threading.Event) -> PosAdapter:
    if cfg.adapter == "sql":
        from .adapters.sql import SqlAdapter

        s = cfg.sql
        return SqlAdapter(cfg.source_name, cfg.store_id, s.url, location_id=s.location_id, notify_channel=s.notify_channel,
                          statement_timeout_ms=s.statement_timeout_ms, connect_timeout_s=s.connect_timeout_s, stop=stop)
    from .adapters.rest import RestAdapter

    return RestAdapter.from_config(cfg, stop=stop)


class StockReader:
    """Turns store rows into levels with the pure rules of ``stock`` (used by RPC and publishing)."""

    def __init__(self, store: EdgeStore, cfg: PosConfig) -> None:
        self.store = store
        self.rules = stock.StockRules(cfg.stock_feed_ttl_s, int(cfg.stock_count_max_age_s * 1e6))

    def levels(self, skus: list[str], now: float) -> list[m.StockLevel]:
        last_ok_text = self.store.meta("last_stock_ok")
        last_ok = float(last_ok_text) if last_ok_text else None
        clock_text = self.store.meta("source_clock_us")
        source_now = int(clock_text) if clock_text else 0
        out = []
        for sku, (qty, ts, moved) in self.store.stock_inputs(skus).items():
            lvl = stock.level(qty, ts, moved, rules=self.rules, source_now_us=source_now, last_feed_ok=last_ok, now=now)
            out.append(m.StockLevel(sku, lvl, None if ts is None else ts / 1e6))
        return out


class Queries:
    """The RPC handlers. Each RPC thread reads through its own read-only store connection (SQLite
    connections belong to the thread that opened them); ``close_thread`` closes the calling thread's."""

    def __init__(self, cfg: PosConfig, db_path, health: HealthState) -> None:
        self.cfg, self.db_path, self.health = cfg, db_path, health
        self._local = threading.local()
        self.test_link = link.ProbeRunner(cfg)

    def _reader(self) -> StockReader:
        reader = getattr(self._local, "reader", None)
        if reader is None:
            reader = self._local.reader = StockReader(EdgeStore(self.db_path, readonly=True), self.cfg)
        return reader

    def close_thread(self) -> None:
        reader = getattr(self._local, "reader", None)
        if reader is not None:
            reader.store.close()
            self._local.reader = None

    def handlers(self) -> dict:
        return {
            "stock": (m.StockQuery, lambda q: m.StockReply(self._reader().levels(q.skus[:1000], time.time()))),
            "baskets": (m.BasketQuery, lambda q: m.BasketsReply(self._reader().store.baskets_of(q.shopper_id, max(1, min(q.limit, 200))))),
            "catalogue": (m.CatalogQuery, self._catalogue),
            # maintenance page: the link as the poller sees it, and a fresh probe of the source on a
            # thread of its own (link.py); their failures are error replies, never a dead RPC thread
            "link": (m.Empty, contained("link", self._link)),
            "test_link": (m.Empty, contained("test_link", self.test_link)),
        }

    def _catalogue(self, q: m.CatalogQuery) -> m.CatalogReply:
        """The catalogue as last read from the POS; an error until pos has read it once (a fresh edge store
        answering "no items" would look like an empty store to offers)."""
        store = self._reader().store
        if store.catalogue_read_at() is None:
            raise EndcapError("catalogue: pos has not read the POS catalogue yet (first poll pending, or the "
                              "source unreachable: see pos health)", code="not_ready")
        return m.CatalogReply(store.catalogue(q.categories[:200], max(1, min(q.limit, 50_000))))

    def _link(self, _q: m.Empty) -> m.PosLink:
        store = self._reader().store
        return link.link_state(self.cfg, self.health, store.newest_source_us(), store.quarantined_count(), time.time())


RPC_WORKERS = 3  # one may wait on a link probe (bounded) while the others answer ``stock`` and the rest


def _publish(pub: Publisher, poller: PosPoller, reader: StockReader, out, now: float) -> None:
    for t in out.baskets:
        pub.publish("pos.basket", poller.basket_message(t))
    skus = sorted(out.stock_skus)
    for i in range(0, len(skus), 200):
        pub.publish("pos.stock", m.StockChanged(reader.levels(skus[i:i + 200], now)))


def main(ctx: ServiceContext) -> None:
    cfg: PosConfig = ctx.config
    db_path = ctx.state_dir() / "pos.db"
    store = EdgeStore(db_path)
    health = HealthState("pos", stale_after_s=max(10.0, 5 * cfg.poll_interval_s))
    adapter = make_adapter(cfg, ctx.stop)
    poller = PosPoller(adapter, store, cfg, health)
    reader = StockReader(store, cfg)
    pub = Publisher(ctx.paths.pub_address("pos"), "pos")
    health_pub = HealthPublisher(health, pub, cfg.health_interval_s)
    queries = Queries(cfg, db_path, health)
    try:
        rpc = RpcThread("pos-rpc", RpcServer(ctx.paths.rpc_address("pos"), "pos", queries.handlers()), ctx.stop,
                        workers=RPC_WORKERS, thread_exit=queries.close_thread)
    except BaseException:
        adapter.close()
        pub.close()
        store.close()
        raise
    ctx.ready(f"reading {cfg.adapter} source {cfg.source_name}")
    changed, next_poll, next_health = True, 0.0, 0.0
    try:
        while not ctx.stop.is_set():
            ctx.alive()
            rpc.check()  # a dead RPC thread: exit non-zero, systemd restarts pos
            now = time.time()
            if changed or now >= next_poll:
                out, wait_s = poller.cycle(now, changed=changed)
                next_poll = now + wait_s
                store.set_meta("source_clock_us", str(poller.source_now_us))
                _publish(pub, poller, reader, out, now)
            sweeping = False
            if not poller.backing_off:
                swept = poller.sweep_step(time.time())
                if swept is not None:
                    sweeping = True
                    _publish(pub, poller, reader, swept, time.time())
            if time.time() >= next_health:
                poller.refresh_health_counters()
                next_health = time.time() + cfg.health_interval_s
            health_pub.maybe_publish(time.time())
            step = 0.0 if sweeping else min(max(0.0, next_poll - time.time()), cfg.health_interval_s)
            if poller.backing_off or not cfg.change_signal:
                # honour the backoff (and any Retry-After) even if the source signals a change
                ctx.stop.wait(step)
                changed = False
                continue
            try:
                changed = adapter.wait_for_change(step)
            except UpstreamError as e:  # the next cycle reports a real outage and backs off
                log.debug("change signal failed: %s", e)
                changed = False
                ctx.stop.wait(step)
    finally:
        adapter.close()
        pub.close()
        ctx.stop.set()  # the RPC threads end within their receive timeout
        rpc.close()
        store.close()

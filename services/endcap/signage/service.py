"""The ``signage`` service: offers from the bus to the screens' pages, and the screens' health back.

Threads:
- main: drives the waitress server's socket loop (waitress is the production WSGI server; ADR 0005),
  pings the watchdog, publishes ``signage.health``.
- ``signage-offers``: receives ``offers.offer``, checks each offer (``playlist.check_offer``), routes
  it to the displays of its zone and pushes it into the ``Hub``; rejected offers are logged with the
  reason (throttled) and counted.
- waitress workers: pages, event streams (one thread each while open), acknowledgements.
- ``signage-rpc``: answers the maintenance page's ``screens`` and ``push_test_offer`` (``maint.py``).

Health means screens are alive: ``ok`` only while every configured display has acknowledged within
``screen_stale_s`` (the page acks each change and every ``heartbeat_s``). The bound URL is written to
``/run/endcap/signage.url`` (so ``port = 0`` is usable by tools and tests) and named in the status.
"""
from __future__ import annotations

import ipaddress
import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import msgspec

from ..core import messages as m
from ..core.atomic import atomic_write
from ..core.bus import Publisher, RpcThread, Subscriber
from ..core.errors import BusTimeout, EndcapError
from ..core.health import HealthPublisher, HealthState
from ..core.runner import ServiceContext
from . import maint, playlist
from .config import SignageConfig
from .hub import Hub
from .proof import ProofLog
from .web import Throttle, WebContext, create_app

log = logging.getLogger(__name__)

URL_FILE = "signage.url"


@dataclass
class ScreenHealth(HealthState):
    """``ok`` while the stalest display's last acknowledgement is younger than ``stale_after_s``."""

    displays: tuple[str, ...] = ()
    acks: dict[str, float] = field(default_factory=dict)
    url: str = ""

    def update(self, acks: dict[str, float]) -> None:
        self.acks = acks
        if all(d in acks for d in self.displays):
            self.success(min(acks[d] for d in self.displays))

    def snapshot(self, now: float) -> m.Health:
        h = super().snapshot(now)
        if h.ok:
            status = f"screen alive: {len(self.displays)} display(s) acknowledging; pages at {self.url}/display/<id>"
        else:
            never = [d for d in self.displays if d not in self.acks]
            silent = [d for d in self.displays if d in self.acks and now - self.acks[d] > self.stale_after_s]
            parts = []
            if never:
                parts.append(f"no acknowledgement yet from {', '.join(never)}")
            if silent:
                ages = ", ".join(f"{d} ({now - self.acks[d]:.0f} s)" for d in silent)
                parts.append(f"screen silent: {ages}")
            status = "; ".join(parts) or h.status
        return msgspec.structs.replace(h, status=status)


def _offers(ctx: ServiceContext, web: WebContext, failed: list[BaseException]) -> None:
    cfg: SignageConfig = ctx.config
    limits = playlist.OfferLimits(cfg.offer_title_max, cfg.offer_body_max, cfg.offer_ttl_max_s)
    throttle = Throttle()
    counters = web.counters
    try:
        with Subscriber([ctx.paths.pub_address("offers")], ["offers.offer"], "signage", recv_timeout_ms=250) as sub:
            while not ctx.stop.is_set():
                try:
                    offer: m.Offer = sub.recv().body
                except BusTimeout:
                    continue
                finally:
                    counters.put("offers_malformed", sub.rejected)  # missing fields, wrong types
                counters.add("offers_received")
                try:
                    card = playlist.check_offer(offer, time.time(), limits, web.creative_exists)
                except playlist.OfferRejected as e:
                    counters.add("offers_rejected")
                    if throttle.allow(time.monotonic()):
                        log.warning("offer %r for zone %r rejected: %s", offer.offer_id[:64], offer.zone[:64], e)
                    continue
                targets = playlist.route(card.zone, cfg.displays)
                if not targets:
                    counters.add("offers_unrouted")
                    log.debug("offer %s: no display shows zone %r", card.offer_id, card.zone)
                    continue
                if card.image_missing and throttle.allow(time.monotonic()):
                    log.warning("offer %s: creative %r missing; showing the fallback image", card.offer_id, offer.image)
                web.hub.push(targets, card, time.monotonic())
                counters.add("offers_routed")
    except BaseException as e:  # handed to the main thread, which fails the service
        failed.append(e)
        raise


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def main(ctx: ServiceContext) -> None:
    from waitress import create_server, wasyncore  # the server, only when serving

    cfg: SignageConfig = ctx.config
    state = ctx.state_dir()
    creatives = Path(cfg.creatives_dir) if cfg.creatives_dir else state / "creatives"
    if not cfg.creatives_dir:
        creatives.mkdir(parents=True, exist_ok=True)
    elif not creatives.is_dir():
        log.warning("creatives_dir %s does not exist: loop items play the built-in fallback", creatives)
    hub = Hub([d.id for d in cfg.displays], cfg.ring_size)
    proof = ProofLog(state / "proof", cfg.proof_rotate_bytes, cfg.proof_keep_files)
    web = WebContext(cfg, hub, proof, creatives, ctx.stop)
    sockets: dict = {}
    try:
        server = create_server(create_app(web), map=sockets, host=cfg.bind, port=cfg.port, threads=cfg.http_threads,
                               ident="endcap", asyncore_use_poll=True, clear_untrusted_proxy_headers=True)
    except OSError as e:
        proof.close()
        raise EndcapError(f"cannot listen on {cfg.bind}:{cfg.port}: {e}", code="bind") from e
    port = server.effective_port
    host = f"[{cfg.bind}]" if ":" in cfg.bind else cfg.bind
    url = f"http://{host}:{port}"
    if _is_loopback(cfg.bind):
        web.allowed_hosts = {f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}", f"{host}:{port}"}
    url_file = ctx.paths.run_dir / URL_FILE
    atomic_write(url_file, (url + "\n").encode())

    health = ScreenHealth("signage", stale_after_s=cfg.screen_stale_s, displays=tuple(d.id for d in cfg.displays), url=url)
    pub = Publisher(ctx.paths.pub_address("signage"), "signage")
    health_pub = HealthPublisher(health, pub, cfg.health_interval_s)
    failed: list[BaseException] = []
    offers = threading.Thread(target=_offers, args=(ctx, web, failed), name="signage-offers", daemon=True)
    offers.start()
    rpc: RpcThread | None = None
    was_ok: bool | None = None
    try:
        rpc = RpcThread("signage-rpc", maint.server(ctx.paths.rpc_address("signage"), maint.SignageMaint(web, hub)), ctx.stop)
        ctx.ready(f"serving {url} for {len(cfg.displays)} display(s)")
        while not ctx.stop.is_set():
            wasyncore.loop(timeout=0.25, map=sockets, use_poll=True, count=1)
            ctx.alive()
            if not offers.is_alive() and not ctx.stop.is_set():
                raise EndcapError(f"offer receiver stopped: {failed[0] if failed else 'unknown reason'}", code="bus")
            rpc.check()  # a dead maintenance RPC thread: exit non-zero, systemd restarts signage
            now = time.time()
            health.update(web.screens.snapshot())
            health.counters.update(web.counters.snapshot(), streams=hub.streams, proof_records=proof.records)
            health_pub.maybe_publish(now)
            ok = health.is_ok(now)
            if ok != was_ok:
                log.info("%s", health.snapshot(now).status)
                was_ok = ok
    finally:
        hub.close()  # ends every event stream, so the workers can finish
        server.task_dispatcher.shutdown(timeout=3)
        server.close()
        wasyncore.close_all(sockets)
        offers.join(timeout=2)
        if rpc is not None:
            ctx.stop.set()  # the RPC thread ends within its receive timeout
            rpc.close()
        pub.close()
        proof.close()
        url_file.unlink(missing_ok=True)

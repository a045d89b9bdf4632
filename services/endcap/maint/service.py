"""The ``maint`` service: the maintenance page over TLS, plus its own health on ``maint.health``.

At start: the certificate (installed, or self-signed once into the state dir) and its fingerprint; when
no technician account exists, a fresh one-time setup code. Both go to ``<run>/maint-screen.txt`` for the
HDMI service screen (the log names that file, never the code). The page's URL goes to ``<run>/maint.url``.
"""
from __future__ import annotations

import logging
import socket
import ssl
import tempfile
import time

from ..core.atomic import atomic_write
from ..core.bus import Publisher
from ..core.errors import BusError, EndcapError
from ..core.health import HealthPublisher, HealthState
from ..core.runner import ServiceContext
from . import accounts
from .app import create_app, large_body_rule
from .config import MaintConfig
from .gate import SMALL_BODY
from .server import TlsServer
from .sources import Feeds
from .sweep import UPLOAD_DIR, sweep_at_start
from .tlscert import ensure_certificate, fingerprint

log = logging.getLogger(__name__)

SCREEN_FILE = "maint-screen.txt"
URL_FILE = "maint.url"


def screen_text(url: str, fp: str, code: str | None, ttl_s: float) -> str:
    lines = ["Endcap maintenance page", f"  {url}", "Certificate fingerprint (SHA-256):", f"  {fp}"]
    if code:
        lines += [f"One-time setup code (first login, valid {ttl_s / 3600:.0f} h):", f"  {code}"]
    return "\n".join(lines) + "\n"


def self_check(port: int, bind: str) -> None:
    """One TLS handshake against our own port: the page's health work."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # we check that TLS answers, not who we are
    host = "127.0.0.1" if bind in ("0.0.0.0", "127.0.0.1") else bind
    try:
        with socket.create_connection((host, port), timeout=5) as raw, ctx.wrap_socket(raw):
            pass
    except OSError as e:
        raise EndcapError(f"TLS self-check on port {port} failed: {e}", code="tls") from e


def main(ctx: ServiceContext) -> None:
    cfg: MaintConfig = ctx.config
    state = ctx.state_dir()
    run_dir = ctx.paths.run_dir
    # waitress spools large request bodies to tempfile's directory; /tmp is tmpfs (RAM) on the device, so
    # point it at the data partition: an uploaded bundle never sits whole in memory
    spool = state / "spool"
    spool.mkdir(exist_ok=True)
    tempfile.tempdir = str(spool)
    # leftovers of uploads cut off by a kill or power loss, and of uploads never installed (before the page
    # serves, so no upload of ours is in flight)
    sweep_at_start(state / UPLOAD_DIR, ctx.paths, time.time())
    cert, key = ensure_certificate(state, cfg.cert_file, cfg.key_file, cfg.hostname, [cfg.bind, *cfg.san_ips])
    fp = fingerprint(cert)
    code = accounts.new_setup_code(state, cfg.setup_code_ttl_s, time.time())
    feeds = Feeds(ctx.paths, cfg.services).start()
    server = None
    try:
        # the origin depends on the port actually bound (port 0 in tests), so bind first, then build the app
        holder: dict = {}
        # waitress's own limit is the upload limit; the front end relays a body over 1 MiB only for a
        # logged-in upload (large_body_rule), so nobody can fill the spool dir without a session
        server = TlsServer(lambda environ, start: holder["app"](environ, start), bind=cfg.bind, port=cfg.port,
                           cert=cert, key=key, max_connections=cfg.max_connections,
                           max_body=max(cfg.max_upload_bytes, SMALL_BODY),
                           authorize=lambda head: holder["authorize"](head))
        origin = cfg.effective_origin(server.port)
        holder["app"] = create_app(cfg, ctx.paths, state_dir=state, origin=origin, fingerprint=fp, feeds=feeds)
        holder["authorize"] = large_body_rule(holder["app"].extensions["maint"])
        server.start()
        atomic_write(run_dir / URL_FILE, (origin + "\n").encode())
        atomic_write(run_dir / SCREEN_FILE, screen_text(origin, fp, code, cfg.setup_code_ttl_s).encode(), mode=0o640)
        if code:  # the code itself goes to the service screen only, never to the journal
            log.warning("no technician password set: the one-time setup code (valid %.0f h) is on the service "
                        "screen, %s", cfg.setup_code_ttl_s / 3600, run_dir / SCREEN_FILE)
        log.info("maintenance page at %s (fingerprint %s)", origin, fp)
        health = HealthState("maint", stale_after_s=30.0)
        pub = Publisher(ctx.paths.pub_address("maint"), "maint")
        health_pub = HealthPublisher(health, pub, 2.0)
        ctx.ready(origin)
        next_check = 0.0
        try:
            while not ctx.stop.is_set():
                ctx.alive()
                now = time.monotonic()
                if now >= next_check:
                    try:
                        self_check(server.port, cfg.bind)
                        health.success(time.time())
                    except EndcapError as e:
                        health.failure(e, time.time())
                    next_check = now + 10.0
                try:
                    health_pub.maybe_publish(time.time())
                except BusError as e:
                    log.debug("maint.health not published: %s", e)
                ctx.stop.wait(0.5)
        finally:
            pub.close()
    finally:
        if server is not None:
            server.close()
        feeds.close()

"""The page server: a Flask app for the kiosk browsers on this box (bound to loopback).

Routes (all under ``/display/``, the service worker's scope):
- ``GET /display/<id>``: the page; its schedule is embedded as JSON so it can play from the cache.
  An unknown id gets a 404 page that still plays the built-in loop (never a blank screen).
- ``GET /display/<id>/events``: SSE. Each offer is ``id: <boot>-<seq>`` / ``event: offer`` / JSON
  ``data``; a reconnecting page sends ``Last-Event-ID`` (or ``?last_id=``) and gets what it missed
  and is still live. ``event: ping`` every ``sse_ping_s`` keeps idle streams provably alive.
- ``POST /display/<id>/ack``: proof of play and heartbeat (JSON, see ``Ack``); 204 when stored.
- ``/display/sw.js``, ``/display/static/...``, ``/display/creatives/<name>``, ``/display/fallback``.

Invariants: every response carries a strict CSP (scripts and styles only from this origin; offer text
is set with ``textContent`` and never parsed as HTML); requests naming another Host are refused (DNS
rebinding); acks must be ``application/json`` from this origin, at most 64 KiB, and decode strictly.
"""
from __future__ import annotations

import json
import logging
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Iterator, Literal, Optional

import msgspec
from flask import Flask, Response, abort, render_template, request, send_from_directory
from msgspec import Meta

from . import playlist
from .config import IMAGE_EXTENSIONS, SignageConfig, builtin_loop, creative_name_problem
from .hub import Hub
from .proof import ProofLog

log = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
STATIC = HERE / "static"
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; "
       "connect-src 'self'; worker-src 'self'; manifest-src 'self'; base-uri 'none'; form-action 'none'; "
       "frame-ancestors 'none'")
SVG_CSP = "default-src 'none'; style-src 'unsafe-inline'; sandbox"
MAX_ACK_BYTES = 64 * 1024
MAX_OFFER_IMAGES = 48  # offer images preloaded and kept decoded: each costs screen-sized memory
SHELL = ["/display/static/page.js", "/display/static/page.css", "/display/static/builtin/fallback.html",
         "/display/static/builtin/endcap.svg", "/display/fallback"]

RecordType = Literal["loop", "offer", "fallback"]
ShortText = Annotated[str, Meta(min_length=1, max_length=64)]


class Showing(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    type: RecordType
    item: ShortText
    since: float
    offer_id: Optional[ShortText] = None


class Played(msgspec.Struct, forbid_unknown_fields=True, frozen=True, rename={"from_ms": "from", "to_ms": "to"}):
    rid: Annotated[str, Meta(pattern=r"^[A-Za-z0-9-]{1,80}$")]
    type: RecordType
    item: ShortText
    from_ms: float
    to_ms: float
    offer_id: Optional[ShortText] = None


class Ack(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """What a page POSTs: what is on screen now, and the showings that ended since its last ack."""

    showing: Optional[Showing] = None
    played: Annotated[list[Played], Meta(max_length=200)] = []


_ACK = msgspec.json.Decoder(Ack)


class Throttle:
    """At most ``n`` log lines per ``window_s`` for one kind of complaint; the rest are only counted."""

    def __init__(self, n: int = 10, window_s: float = 60.0) -> None:
        self.n, self.window_s = n, window_s
        self._start, self._count, self.suppressed = 0.0, 0, 0
        self._lock = threading.Lock()

    def allow(self, now: float) -> bool:
        with self._lock:
            if now - self._start >= self.window_s:
                self._start, self._count = now, 0
            self._count += 1
            if self._count > self.n:
                self.suppressed += 1
                return False
            return True


@dataclass
class Screens:
    """When each display last acknowledged, and what it said it shows (thread-safe)."""

    last_ack: dict[str, float] = field(default_factory=dict)
    showing: dict[str, Showing] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def ack(self, display_id: str, now: float, showing: Optional[Showing]) -> None:
        with self._lock:
            self.last_ack[display_id] = now
            if showing is not None:
                self.showing[display_id] = showing

    def snapshot(self) -> dict[str, float]:
        with self._lock:
            return dict(self.last_ack)

    def showing_snapshot(self) -> dict[str, Showing]:
        with self._lock:
            return dict(self.showing)


@dataclass
class Counters:
    values: dict[str, float] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, name: str, n: float = 1) -> None:
        with self._lock:
            self.values[name] = self.values.get(name, 0) + n

    def put(self, name: str, value: float) -> None:
        with self._lock:
            self.values[name] = value

    def snapshot(self) -> dict[str, float]:
        with self._lock:
            return dict(self.values)


@dataclass
class WebContext:
    cfg: SignageConfig
    hub: Hub
    proof: ProofLog
    creatives: Path
    stop: threading.Event
    screens: Screens = field(default_factory=Screens)
    counters: Counters = field(default_factory=Counters)
    allowed_hosts: set[str] = field(default_factory=set)  # filled once the port is known; empty: any
    complaints: Throttle = field(default_factory=Throttle)
    _seen: OrderedDict[str, None] = field(default_factory=OrderedDict)
    _seen_lock: threading.Lock = field(default_factory=threading.Lock)

    def creative_exists(self, name: str) -> bool:
        return creative_name_problem(name) is None and (self.creatives / name).is_file()

    def forget(self, records: list[Played]) -> None:
        with self._seen_lock:
            for r in records:
                self._seen.pop(r.rid, None)

    def fresh_records(self, records: list[Played]) -> list[Played]:
        """Drop records already stored (a page resends a batch whose reply it lost)."""
        out = []
        with self._seen_lock:
            for r in records:
                if r.rid in self._seen:
                    continue
                self._seen[r.rid] = None
                out.append(r)
            while len(self._seen) > 8192:
                self._seen.popitem(last=False)
        return out


def _page_config(ctx: WebContext, display_id: Optional[str]) -> dict[str, Any]:
    cfg = ctx.cfg
    display = cfg.display(display_id) if display_id else None
    loop = cfg.loop(display.loop) if display else builtin_loop()
    schedule = playlist.build_schedule(loop, cfg.dayparts if display else [])
    base = f"/display/{display.id}" if display else None
    return {
        "display": display.id if display else None,
        "zones": list(display.zones) if display else [],
        "events": f"{base}/events" if base else None,
        "ack": f"{base}/ack" if base else None,
        "sw": "/display/sw.js",
        "cache_self": display is not None,
        "shell": SHELL,
        "heartbeat_ms": int(cfg.heartbeat_s * 1000),
        "ping_ms": int(cfg.sse_ping_s * 1000),
        "reconnect_max_ms": int(cfg.reconnect_max_s * 1000),
        "currency": cfg.currency,
        "locale": cfg.locale,
        "schedule": playlist.page_schedule(schedule, ctx.creative_exists),
        "offer_images": _offer_images(ctx) if display else [],
    }


def _offer_images(ctx: WebContext) -> list[str]:
    try:
        names = sorted(p.name for p in ctx.creatives.iterdir() if p.is_file())
    except OSError:
        return []
    ok = [n for n in names if creative_name_problem(n) is None and n.lower().endswith(IMAGE_EXTENSIONS)]
    return [playlist.creative_url(n) for n in ok[:MAX_OFFER_IMAGES]]


def _sse(event: str, data: str, event_id: str | None = None) -> bytes:
    head = f"id: {event_id}\n" if event_id else ""
    return f"{head}event: {event}\ndata: {data}\n\n".encode()


def _stream(ctx: WebContext, display_id: str, last_id: Optional[str]) -> Iterator[bytes]:
    hub = ctx.hub
    hub.opened()
    try:
        # retry: the page reconnects by itself; this only matters to a bare EventSource
        yield f"retry: {int(ctx.cfg.reconnect_max_s * 1000)}\n: {display_id}\n\n".encode()
        events, cursor = hub.replay(display_id, last_id, time.monotonic())
        while True:
            now = time.monotonic()
            live = [e for e in events if e.until > now]
            for e in live:
                yield _sse("offer", json.dumps(e.card.to_page(e.until - now)), e.event_id(hub.boot))
            if live:
                ctx.counters.add("offers_sent", len(live))
            if hub.closed or ctx.stop.is_set():
                return
            events, cursor = hub.wait(display_id, cursor, ctx.cfg.sse_ping_s, time.monotonic)
            if not events and not hub.closed:
                yield b"event: ping\ndata: 1\n\n"  # a write also tells waitress whether the page is gone
    finally:
        hub.closed_stream()


def create_app(ctx: WebContext) -> Flask:
    """The Flask app. Nothing is started here; ``service.py`` serves it with waitress."""
    app = Flask(__name__, static_folder=None, template_folder=str(HERE / "templates"))
    app.config["MAX_CONTENT_LENGTH"] = MAX_ACK_BYTES

    def page(display_id: Optional[str], status: int) -> Response:
        cfg = _page_config(ctx, display_id)
        html = render_template("display.html", config=cfg, display_id=display_id, known=cfg["display"] is not None)
        return Response(html, status=status, mimetype="text/html", headers={"Cache-Control": "no-cache"})

    @app.before_request
    def _check_host() -> Optional[Response]:
        if ctx.allowed_hosts and request.host not in ctx.allowed_hosts:
            return Response("unknown host\n", status=421, mimetype="text/plain")
        return None

    @app.after_request
    def _headers(resp: Response) -> Response:
        resp.headers.setdefault("Content-Security-Policy", CSP)
        resp.headers["X-Content-Type-Options"] = "nosniff"
        resp.headers["Referrer-Policy"] = "no-referrer"
        resp.headers["Cross-Origin-Opener-Policy"] = "same-origin"
        return resp

    @app.errorhandler(404)
    def not_found(_err: Exception) -> Response:
        # Any page-like URL a browser may be pointed at plays the built-in loop; assets stay plain 404s
        # so the page's preloading sees them missing and falls back.
        path = request.path
        if request.method == "GET" and path.startswith("/display/") \
                and not path.startswith(("/display/static/", "/display/creatives/")) and not path.endswith(("/events", "/ack")):
            ctx.counters.add("unknown_display_requests")
            return page(path.removeprefix("/display/")[:64] or None, 404)
        return Response("not found\n", status=404, mimetype="text/plain")

    @app.get("/")
    def index() -> Response:
        return page(None, 404)

    @app.get("/display/fallback")
    def fallback() -> Response:
        return page(None, 200)

    @app.get("/display/<display_id>")
    def display(display_id: str) -> Response:
        if ctx.cfg.display(display_id) is None:
            abort(404)
        return page(display_id, 200)

    @app.get("/display/<display_id>/events")
    def events(display_id: str) -> Response:
        if not ctx.hub.knows(display_id):
            abort(404)
        last_id = request.headers.get("Last-Event-ID") or request.args.get("last_id")
        return Response(_stream(ctx, display_id, last_id), mimetype="text/event-stream",
                        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})

    @app.post("/display/<display_id>/ack")
    def ack(display_id: str) -> Response:
        if not ctx.hub.knows(display_id):
            abort(404)
        if request.mimetype != "application/json":
            return _complaint(415, display_id, "ack is not application/json")
        origin = request.headers.get("Origin")
        if origin is not None and origin != request.host_url.rstrip("/"):
            return _complaint(403, display_id, f"ack from foreign origin {origin[:80]!r}")
        try:
            body = _ACK.decode(request.get_data(cache=False))
        except msgspec.ValidationError as e:
            return _complaint(400, display_id, f"ack rejected: {e}")
        except msgspec.DecodeError as e:
            return _complaint(400, display_id, f"ack is not JSON: {e}")
        bad = [r.rid for r in body.played if not (0 <= r.to_ms - r.from_ms <= 86_400_000)]
        if bad:
            return _complaint(400, display_id, f"ack rejected: record(s) {', '.join(bad[:3])} end before they start")
        now = time.time()
        records = ctx.fresh_records(body.played)
        try:
            # a maintenance test card is recorded as "test": never proof of play of a real offer
            ctx.proof.append({"rid": r.rid, "type": "test" if playlist.is_test_offer(r.offer_id) else r.type,
                              "display": display_id, "item": r.item,
                              "offer_id": r.offer_id, "from": round(r.from_ms / 1000, 3), "to": round(r.to_ms / 1000, 3),
                              "duration_s": round((r.to_ms - r.from_ms) / 1000, 3), "received_at": round(now, 3)}
                             for r in records)
        except OSError as e:  # disk full or failing: the page keeps its records and resends them
            ctx.forget(records)
            ctx.counters.add("proof_errors")
            if ctx.complaints.allow(time.monotonic()):
                log.error("proof of play not stored: %s", e)
            return Response(status=503)
        ctx.screens.ack(display_id, now, body.showing)
        ctx.counters.add("acks")
        return Response(status=204)

    def _complaint(status: int, display_id: str, reason: str) -> Response:
        ctx.counters.add("acks_rejected")
        if ctx.complaints.allow(time.monotonic()):
            log.warning("display %s: %s", display_id, reason)
        return Response(json.dumps({"error": reason}), status=status, mimetype="application/json")

    @app.get("/display/sw.js")
    def service_worker() -> Response:
        resp = send_from_directory(STATIC, "sw.js", mimetype="text/javascript", max_age=0)
        resp.headers["Cache-Control"] = "no-cache"
        resp.headers["Service-Worker-Allowed"] = "/display/"
        return resp

    @app.get("/display/static/<path:name>")
    def static_file(name: str) -> Response:
        resp = send_from_directory(STATIC, name, max_age=0)
        resp.headers["Cache-Control"] = "no-cache"
        return resp

    @app.get("/display/creatives/<name>")
    def creative(name: str) -> Response:
        if creative_name_problem(name):
            abort(404)
        resp = send_from_directory(ctx.creatives, name, max_age=0)
        resp.headers["Cache-Control"] = "no-cache"
        if name.lower().endswith(".svg"):
            resp.headers["Content-Security-Policy"] = SVG_CSP
        return resp

    return app

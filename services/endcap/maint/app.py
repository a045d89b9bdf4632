"""The Flask app factory and the rules every request passes through.

Order per request: static files pass; the session is looked up server-side from the ``__Host-`` cookie;
state-changing requests must come from our own origin (``Origin`` + ``Sec-Fetch-Site``) and, with a
session, carry its CSRF token (form field ``csrf`` or header ``X-CSRF-Token``); every page except login
and setup needs a live session, and a session opened with the setup code may only set the password.
Every response carries the security headers; pages are ``Cache-Control: no-store``.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional
from urllib.parse import urlsplit

from flask import Flask, Response, g, redirect, render_template, request, url_for

from ..core.paths import Paths
from .audit import AuditLog, RefusalLimit
from .config import MaintConfig
from .gate import Head
from .network import Network, NetworkdApplier, networkd_reload
from .security import BASE_HEADERS, cross_site_reason, token_ok
from .sources import Bus, Feeds
from .store import Session, Store
from .systemd import Systemd

COOKIE = "__Host-endcap_session"
UPLOAD_PATH = "/update/upload"
OPEN_ENDPOINTS = {"static", "auth.login", "auth.setup", "auth.healthz"}
SETUP_ENDPOINTS = {"auth.account", "auth.logout"}


@dataclass
class Maint:
    """Everything the views need, made once per app."""

    cfg: MaintConfig
    paths: Paths
    state_dir: Path
    origin: str
    store: Store
    audit: AuditLog
    bus: Bus
    feeds: Feeds
    systemd: Systemd
    network: Network
    clock: Callable[[], float]
    fingerprint: str = ""
    login_slots: threading.BoundedSemaphore = field(default_factory=lambda: threading.BoundedSemaphore(4))
    upload_slot: threading.Lock = field(default_factory=threading.Lock)  # one upload at a time
    refusals: RefusalLimit = field(default_factory=lambda: RefusalLimit(30))
    audit_lock: threading.Lock = field(default_factory=threading.Lock)
    started_at: float = field(default_factory=time.time)

    @property
    def upload_dir(self) -> Path:
        return self.state_dir / "uploads"

    @property
    def diag_dir(self) -> Path:
        return self.state_dir / "diagnostics"


def maint() -> Maint:
    from flask import current_app
    return current_app.extensions["maint"]


def session() -> Optional[Session]:
    return g.get("session")


def remote() -> str:
    return request.remote_addr or "?"


def audit(action: str, target: str = "", result: str = "ok", user: Optional[str] = None) -> None:
    """One audit record; those caused by requests without a session (and not a success) are rate-limited."""
    s = session()
    mt = maint()
    who = user if user is not None else (s.user if s else "-")
    note = None
    if s is None and who == "-" and not result.startswith("ok"):
        with mt.audit_lock:
            allowed, dropped = mt.refusals.allow(mt.clock())
        if not allowed:
            return
        if dropped:
            note = f"{dropped} earlier refusal(s) without a session not recorded (rate limit)"
    mt.audit.record(user=who, remote=remote(), action=action, target=target, result=result, now=mt.clock(), note=note)


def fail(status: int, message: str, *, action: str = "", target: str = "") -> Response:
    """A plain-words error page (and an audit record when ``action`` names one)."""
    if action:
        audit(action, target, f"refused: {message}")
    if request.accept_mimetypes.best == "application/json" or request.path.startswith("/api/") or \
            request.headers.get("X-Requested-With") == "fetch":
        resp = Response(f'{{"ok": false, "message": {__import__("json").dumps(message)}}}', status,
                        mimetype="application/json")
    else:
        resp = Response(render_template("error.html", status=status, message=message), status)
    return resp


def fresh_auth(s: Session) -> bool:
    mt = maint()
    return mt.clock() - s.auth_at <= mt.cfg.reauth_s


def safe_next(target: str) -> str:
    """A local path to return to after login/re-auth (never another site)."""
    parts = urlsplit(target or "")
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


def large_body_rule(mt: Maint) -> Callable[[Head], Optional[tuple[int, str]]]:
    """The TLS front end's check before relaying a body over 1 MiB: only a bundle upload, from our own
    origin, with a live session (not a setup-code one), its CSRF token and a fresh password."""
    def authorize(head: Head) -> Optional[tuple[int, str]]:
        if head.method != "POST" or head.path != UPLOAD_PATH:
            return 413, "Only a bundle upload may carry a body this large."
        sent = {"Origin": head.headers.get("origin"), "Sec-Fetch-Site": head.headers.get("sec-fetch-site")}
        why = cross_site_reason(head.method, {k: v for k, v in sent.items() if v is not None}, mt.origin)
        if why:
            return 403, f"Refused a cross-site request ({why})."
        sid = head.cookie(COOKIE)
        now = mt.clock()
        s = mt.store.get(sid, now) if sid else None
        if s is None:
            return 401, "Not logged in (or the session ended). Log in again."
        if s.must_change:
            return 403, "Set your password first."
        if not token_ok(s.csrf, head.headers.get("x-csrf-token")):
            return 403, "Refused: the security token is missing or stale. Reload the page."
        if now - s.auth_at > mt.cfg.reauth_s:
            return 403, "Enter your password again first."
        return None
    return authorize


def create_app(cfg: MaintConfig, paths: Paths, *, state_dir: Path, origin: str, clock: Callable[[], float] = time.time,
               fingerprint: str = "", feeds: Optional[Feeds] = None) -> Flask:
    app = Flask(__name__, static_folder="static", template_folder="templates")
    app.config.update(MAX_CONTENT_LENGTH=cfg.max_upload_bytes + (1 << 20), SESSION_COOKIE_NAME="__unused",
                      TEMPLATES_AUTO_RELOAD=False)
    state_dir.mkdir(parents=True, exist_ok=True)
    reload = networkd_reload(cfg.systemd_bus) if cfg.network_reload else None
    mt = Maint(cfg=cfg, paths=paths, state_dir=state_dir, origin=origin,
               store=Store(state_dir / "maint.db", idle_s=cfg.session_idle_s, absolute_s=cfg.session_absolute_s),
               audit=AuditLog(state_dir / "audit.jsonl", max_bytes=cfg.audit_max_bytes, keep=cfg.audit_segments),
               refusals=RefusalLimit(cfg.audit_refusals_per_min), bus=Bus(paths, cfg.rpc_timeout_ms),
               feeds=feeds or Feeds(paths, cfg.services), systemd=Systemd(cfg.systemd_bus, cfg.units),
               network=Network(NetworkdApplier(cfg.network_dir, cfg.network_interface, reload),
                               cfg.network_interface, cfg.network_confirm_s, clock,
                               record=state_dir / "network-pending.json"),
               clock=clock, fingerprint=fingerprint,
               login_slots=threading.BoundedSemaphore(cfg.max_pending_logins))
    app.extensions["maint"] = mt
    mt.network.recover()  # a change left unconfirmed by a restart rolls back now

    from . import views_auth, views_pages, views_actions
    app.register_blueprint(views_auth.bp)
    app.register_blueprint(views_pages.bp)
    app.register_blueprint(views_actions.bp)

    @app.before_request
    def rules() -> Any:
        g.session = None
        if request.endpoint == "static":
            return None
        sid = request.cookies.get(COOKIE, "")
        g.session = mt.store.get(sid, mt.clock()) if sid else None
        if request.method not in ("GET", "HEAD", "OPTIONS"):
            why = cross_site_reason(request.method, request.headers, mt.origin)
            if why:
                return fail(403, f"Refused a cross-site request ({why}).", action="csrf", target=request.path)
            s = g.session
            if s is not None and not token_ok(s.csrf, request.form.get("csrf") if request.mimetype ==
                                              "application/x-www-form-urlencoded" else request.headers.get("X-CSRF-Token")):
                return fail(403, "Refused: the form's security token is missing or stale. Reload the page.",
                            action="csrf", target=request.path)
        if request.endpoint in OPEN_ENDPOINTS:
            return None
        s = g.session
        if s is None:
            if request.method == "GET" and not request.path.startswith("/api/"):
                return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))
            return fail(401, "Not logged in (or the session ended). Log in again.")
        if s.must_change and request.endpoint not in SETUP_ENDPOINTS:
            return redirect(url_for("auth.account"))
        return None

    @app.after_request
    def headers(resp: Response) -> Response:
        for k, v in BASE_HEADERS.items():
            resp.headers.setdefault(k, v)
        if request.endpoint != "static":
            resp.headers["Cache-Control"] = "no-store"
        return resp

    @app.errorhandler(413)
    def too_large(_e) -> Response:
        return fail(413, f"The upload is larger than the limit of {cfg.max_upload_bytes} bytes.", action="upload",
                    target="too-large")

    @app.errorhandler(404)
    def not_found(_e) -> Response:
        return fail(404, "No such page.")

    @app.errorhandler(405)
    def bad_method(_e) -> Response:
        return fail(405, "That action does not work this way.")

    @app.errorhandler(500)
    def internal(_e) -> Response:  # a bug: say so plainly, never show a trace
        return fail(500, "Something went wrong on the gateway; the log (Logs page, endcap-maint.service) has the details.")

    @app.context_processor
    def common() -> dict:
        s = session()
        return {"s": s, "csrf": s.csrf if s else "", "fingerprint": mt.fingerprint, "now": mt.clock()}

    return app

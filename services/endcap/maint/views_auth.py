"""Login (password or one-time setup code), logout, re-authentication and the password change."""
from __future__ import annotations

from flask import Blueprint, Response, make_response, redirect, render_template, request, url_for

from ..core.errors import EndcapError
from . import accounts
from .app import COOKIE, audit, fail, maint, remote, safe_next, session
from .store import delay

bp = Blueprint("auth", __name__)

WRONG = "Wrong user name or password."


def _set_cookie(resp: Response, sid: str) -> Response:
    resp.set_cookie(COOKIE, sid, secure=True, httponly=True, samesite="Strict", path="/")
    return resp


def _wait_left(keys: list[str]) -> float:
    mt = maint()
    c = mt.cfg
    left = 0.0
    for k in keys:
        n, last = mt.store.failures(k)
        left = max(left, last + delay(n, base_s=c.backoff_base_s, max_s=c.backoff_max_s, free=c.backoff_free) - mt.clock())
    return left


def _throttled(keys: list[str], what: str, user: str):
    """A 429 page while back-off applies to the user or the address, else None."""
    left = _wait_left(keys)
    if left > 0:
        audit(what, user[:64], f"refused: back-off {left:.0f} s", user="-")
        return fail(429, f"Too many failed attempts. Try again in {max(1, round(left))} seconds.")
    return None


@bp.get("/healthz")
def healthz():
    return Response("ok\n", mimetype="text/plain")


@bp.route("/login", methods=["GET", "POST"])
def login():
    mt = maint()
    nxt = safe_next(request.values.get("next", "/"))
    setup = not accounts.has_account(mt.state_dir)
    if request.method == "GET":
        return render_template("login.html", setup=setup, next=nxt, error="")
    if not mt.login_slots.acquire(blocking=False):
        return fail(503, "Too many logins are in progress. Try again in a moment.")
    try:
        user = (request.form.get("user") or "")[:64]
        password = request.form.get("password") or ""
        keys = [f"user:{user}", f"addr:{remote()}"]
        refused = _throttled(keys, "login", user)
        if refused is not None:
            return refused
        if not accounts.authenticate(mt.state_dir, user, password):
            mt.store.fail(keys, mt.clock())
            audit("login", user, "failed: wrong user or password", user="-")
            return render_template("login.html", setup=setup, next=nxt, error=WRONG), 401
        mt.store.clear(keys)
        sid, _s = mt.store.create(user, mt.clock())
        audit("login", user, "ok", user=user)
        return _set_cookie(make_response(redirect(nxt)), sid)
    finally:
        mt.login_slots.release()


@bp.post("/setup")
def setup():
    mt = maint()
    if not mt.login_slots.acquire(blocking=False):
        return fail(503, "Too many logins are in progress. Try again in a moment.")
    try:
        keys = ["user:setup-code", f"addr:{remote()}"]
        refused = _throttled(keys, "setup-code", "technician")
        if refused is not None:
            return refused
        code = (request.form.get("code") or "")[:64]
        if not accounts.use_setup_code(mt.state_dir, code, mt.clock()):
            mt.store.fail(keys, mt.clock())
            audit("setup-code", accounts.USER, "failed: wrong, used or expired code", user="-")
            return render_template("login.html", setup=not accounts.has_account(mt.state_dir), next="/",
                                   error="That setup code is wrong, used or expired."), 401
        mt.store.clear(keys)
        sid, _s = mt.store.create(accounts.USER, mt.clock(), must_change=True)
        audit("setup-code", accounts.USER, "ok: password must be set", user=accounts.USER)
        return _set_cookie(make_response(redirect(url_for("auth.account"))), sid)
    finally:
        mt.login_slots.release()


@bp.post("/logout")
def logout():
    mt = maint()
    s = session()
    if s is not None:
        mt.store.revoke(s)
        audit("logout", s.user)
    resp = make_response(redirect(url_for("auth.login")))
    resp.delete_cookie(COOKIE, path="/", secure=True, httponly=True, samesite="Strict")
    return resp


@bp.route("/reauth", methods=["GET", "POST"])
def reauth():
    mt = maint()
    s = session()
    nxt = safe_next(request.values.get("next", "/"))
    if request.method == "GET":
        return render_template("reauth.html", next=nxt, error="")
    keys = [f"user:{s.user}", f"addr:{remote()}"]
    refused = _throttled(keys, "reauth", s.user)
    if refused is not None:
        return refused
    if not accounts.authenticate(mt.state_dir, s.user, request.form.get("password") or ""):
        mt.store.fail(keys, mt.clock())
        audit("reauth", s.user, "failed: wrong password")
        return render_template("reauth.html", next=nxt, error="Wrong password."), 401
    mt.store.clear(keys)
    mt.store.reauthenticated(s, mt.clock())
    audit("reauth", s.user)
    return redirect(nxt)


@bp.route("/account", methods=["GET", "POST"])
def account():
    mt = maint()
    s = session()
    if request.method == "GET":
        return render_template("account.html", error="", done=request.args.get("done") == "1")
    new, again = request.form.get("new") or "", request.form.get("again") or ""
    if not s.must_change:
        keys = [f"user:{s.user}", f"addr:{remote()}"]
        refused = _throttled(keys, "password", s.user)
        if refused is not None:
            return refused
        if not accounts.authenticate(mt.state_dir, s.user, request.form.get("current") or ""):
            mt.store.fail(keys, mt.clock())
            audit("password", s.user, "failed: wrong current password")
            return render_template("account.html", error="The current password is wrong.", done=False), 401
    if new != again:
        return render_template("account.html", error="The two new passwords differ.", done=False), 400
    try:
        accounts.set_password(mt.state_dir, s.user, new)
    except EndcapError as e:
        return render_template("account.html", error=str(e), done=False), 400
    revoked = mt.store.revoke_user(s.user)
    audit("password", s.user, f"changed; {revoked} session(s) ended")
    sid, _n = mt.store.create(s.user, mt.clock())
    return _set_cookie(make_response(redirect(url_for("auth.account", done=1))), sid)

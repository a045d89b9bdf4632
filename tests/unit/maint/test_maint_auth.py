"""Accounts, sessions, back-off and re-authentication through the Flask test client (issue #9 §2)."""
from __future__ import annotations

import json
import time

from endcap.maint import accounts
from endcap.maint.app import COOKIE
from tests.fixtures.maint import ORIGIN, PASSWORD, SAME


def test_no_default_account_setup_code_forces_password(maint_factory):
    mt = maint_factory(account=False)
    r = mt.get("/")
    assert r.status_code == 302 and "/login" in r.headers["Location"]
    assert "setup code" in mt.get("/login").get_data(as_text=True)
    # no account: nothing logs in, not even an empty or "admin" password
    for i, (user, pw) in enumerate((("technician", ""), ("admin", "admin"), ("technician", "technician"))):
        assert mt.login(mt.new_client(f"192.0.2.{50 + i}"), user=user, password=pw).status_code == 401
    code = accounts.new_setup_code(mt.state, 3600, mt.clock())
    assert mt.post("/setup", {"code": "WRNG-WRNG-WRNG-WRNG"}, csrf=False).status_code == 401
    r = mt.post("/setup", {"code": code.lower()}, csrf=False)
    assert r.status_code == 302 and r.headers["Location"].endswith("/account")
    # the setup session may only set the password
    r = mt.get("/services")
    assert r.status_code == 302 and r.headers["Location"].endswith("/account")
    assert mt.post("/account", {"new": "short", "again": "short"}).status_code == 400
    r = mt.post("/account", {"new": "a new long password", "again": "a new long password"})
    assert r.status_code == 302
    assert mt.get("/services").status_code == 200
    # the code works once only
    other = mt.new_client("192.0.2.99")
    assert mt.post("/setup", {"code": code}, client=other, csrf=False).status_code == 401
    assert mt.login(other, password="a new long password").status_code == 302


def test_setup_code_expires(maint_factory):
    mt = maint_factory(account=False)
    code = accounts.new_setup_code(mt.state, 60, mt.clock())
    mt.clock.advance(61)
    assert mt.post("/setup", {"code": code}, csrf=False).status_code == 401


def test_cookie_flags_and_server_side_session(maint_app):
    r = maint_app.login()
    assert r.status_code == 302
    sc = r.headers["Set-Cookie"]
    assert sc.startswith(f"{COOKIE}=")
    for flag in ("Secure", "HttpOnly", "SameSite=Strict", "Path=/"):
        assert flag in sc
    assert "Domain" not in sc and "Expires" not in sc and "Max-Age" not in sc
    sid = maint_app.cookie().value
    assert len(sid) >= 43  # 256 bits, url-safe base64
    # only its hash is stored
    db = (maint_app.state / "maint.db").read_bytes()
    assert sid.encode() not in db


def test_wrong_user_and_wrong_password_look_the_same(maint_factory):
    maint_app = maint_factory(backoff_free=100, account=False)  # about the answer, not the back-off
    accounts.set_password(maint_app.state, accounts.USER, PASSWORD)  # RFC 9106 parameters: the work dominates noise
    bad_user = maint_app.login(maint_app.new_client("192.0.2.1"), user="nobody", password=PASSWORD)
    bad_pw = maint_app.login(maint_app.new_client("192.0.2.2"), password="wrong password here")
    assert bad_user.status_code == bad_pw.status_code == 401
    a, b = bad_user.get_data(as_text=True), bad_pw.get_data(as_text=True)
    assert "Wrong user name or password." in a and "Wrong user name or password." in b
    assert a.replace("nobody", "technician") == b.replace("nobody", "technician")
    # both paths run one Argon2id verify: timings within a factor of 3 of each other
    ta, tb = [], []
    for i in range(3):
        t = time.perf_counter()
        maint_app.login(maint_app.new_client(f"198.51.100.{i}"), user=f"ghost{i}", password="x" * 20)
        ta.append(time.perf_counter() - t)
        t = time.perf_counter()
        maint_app.login(maint_app.new_client(f"198.51.100.{i + 10}"), password="y" * 20)
        tb.append(time.perf_counter() - t)
    assert min(ta) > min(tb) / 3 and min(tb) > min(ta) / 3


def test_backoff_per_user_and_per_address_persisted(maint_factory):
    mt = maint_factory(backoff_free=2, backoff_base_s=10, backoff_max_s=100)
    c = mt.new_client("203.0.113.5")
    for _ in range(2):
        assert mt.login(c, password="wrong wrong wrong").status_code == 401
    r = mt.login(c)  # the right password, but inside the back-off: refused without a check
    assert r.status_code == 429 and "Try again in 10 seconds" in r.get_data(as_text=True)
    # the user is throttled from another address too (per user)
    assert mt.login(mt.new_client("203.0.113.6")).status_code == 429
    mt.clock.advance(11)
    assert mt.login(c, password="wrong again wrong").status_code == 401  # third failure: 20 s now
    mt.clock.advance(11)
    assert mt.login(c).status_code == 429
    # persisted: a new app on the same state dir keeps the count
    from endcap.maint.app import create_app
    app2 = create_app(mt.cfg, mt.paths, state_dir=mt.state, origin=ORIGIN, clock=mt.clock)
    c2 = app2.test_client()
    c2.environ_base = {"REMOTE_ADDR": "203.0.113.5"}
    assert c2.post("/login", base_url=ORIGIN, data={"user": "technician", "password": PASSWORD},
                   headers=SAME).status_code == 429
    mt.clock.advance(10)
    assert mt.login(c).status_code == 302
    # per address: a fresh user name from a throttled address is also slowed
    c = mt.new_client("203.0.113.5")
    for _ in range(2):
        mt.login(c, user="someone", password="nope nope nope")
    for _ in range(2):
        mt.login(c, user="other", password="nope nope nope")
    assert mt.login(c, user="third", password="nope nope nope").status_code == 429
    records = [r for r in mt.audit() if r["action"] == "login"]
    assert any(r["result"].startswith("refused: back-off") for r in records)


def test_concurrent_unauthenticated_logins_are_capped(maint_factory):
    mt = maint_factory(max_pending_logins=1)
    slots = mt.maint.login_slots
    assert slots.acquire(blocking=False)  # one login in flight
    try:
        r = mt.login()
        assert r.status_code == 503 and "Too many logins" in r.get_data(as_text=True)
    finally:
        slots.release()
    assert mt.login().status_code == 302


def test_logout_revokes_server_side(maint_app):
    maint_app.login()
    sid = maint_app.cookie().value
    assert maint_app.get("/audit").status_code == 200
    assert maint_app.post("/logout").status_code == 302
    replay = maint_app.new_client()
    replay.set_cookie(COOKIE, sid, domain="maint.test")
    r = maint_app.get("/audit", replay)
    assert r.status_code == 302 and "/login" in r.headers["Location"]
    assert maint_app.maint.store.count() == 0


def test_idle_and_absolute_timeouts(maint_factory):
    mt = maint_factory(session_idle_s=60, session_absolute_s=150)
    mt.login()
    mt.clock.advance(59)
    assert mt.get("/audit").status_code == 200
    mt.clock.advance(59)
    assert mt.get("/audit").status_code == 200  # used: idle timer restarts
    mt.clock.advance(61)
    assert mt.get("/audit").status_code == 302  # idle for 61 s
    mt.login()
    for _ in range(3):
        mt.clock.advance(50)
        assert mt.get("/audit").status_code == 200
    mt.clock.advance(1)
    assert mt.get("/audit").status_code == 302  # 151 s after login, used or not
    # sessions nobody presents again are purged at the next login
    idle = mt.new_client("192.0.2.30")
    mt.login(idle)
    mt.clock.advance(61)
    mt.login()
    assert mt.maint.store.count() == 1


def test_forged_and_oversized_cookies_are_not_sessions(maint_app):
    for value in ("forged", "A" * 43, "A" * 3000, "../../etc/passwd", "' OR 1=1 --"):
        c = maint_app.new_client()
        c.set_cookie(COOKIE, value, domain="maint.test")
        r = maint_app.get("/audit", c)
        assert r.status_code == 302 and "/login" in r.headers["Location"]
    assert maint_app.get("/api/update/status").status_code == 401


def test_password_change_needs_current_and_revokes_all_sessions(maint_app):
    laptop, phone = maint_app.new_client("192.0.2.10"), maint_app.new_client("192.0.2.11")
    maint_app.login(laptop)
    maint_app.login(phone)
    phone_sid = maint_app.cookie(phone).value
    r = maint_app.post("/account", {"current": "not it at all", "new": "another long password", "again": "another long password"},
                       client=laptop)
    assert r.status_code == 401
    r = maint_app.post("/account", {"current": PASSWORD, "new": "another long password", "again": "another long password"},
                       client=laptop)
    assert r.status_code == 302
    assert maint_app.get("/audit", laptop).status_code == 200  # a fresh session for the one who changed it
    assert maint_app.cookie(phone).value == phone_sid
    assert maint_app.get("/audit", phone).status_code == 302  # every other session ended
    assert maint_app.login(maint_app.new_client(), password=PASSWORD).status_code == 401
    assert accounts.authenticate(maint_app.state, "technician", "another long password")


def test_reauth_required_before_install_and_network(maint_app):
    maint_app.login()
    maint_app.clock.advance(maint_app.cfg.reauth_s + 1)
    r = maint_app.post("/network/apply", {"mode": "dhcp"})
    assert r.status_code == 302 and "/reauth" in r.headers["Location"]
    r = maint_app.client.post("/update/upload", base_url=ORIGIN, data=b"hsqs" + b"\0" * 100,
                              headers={**SAME, "X-CSRF-Token": maint_app.csrf(), "X-Requested-With": "fetch",
                                       "Content-Type": "application/octet-stream"})
    assert r.status_code == 403 and r.get_json()["reauth"] is True
    assert not list((maint_app.state / "uploads").glob("*")) if (maint_app.state / "uploads").exists() else True
    assert maint_app.post("/reauth", {"password": "wrong password!!"}).status_code == 401
    r = maint_app.post("/reauth", {"password": PASSWORD, "next": "https://evil.example/x"})
    assert r.status_code == 302 and r.headers["Location"] == "/"
    assert maint_app.post("/network/apply", {"mode": "dhcp"}).status_code == 302
    assert (maint_app.root / "network" / "10-endcap-eth0.network").read_text().count("DHCP=yes") == 1


def test_audit_log_is_append_only_json_lines(maint_app):
    maint_app.login(user="technician", password="bad password 1")
    maint_app.login()
    path = maint_app.state / "audit.jsonl"
    first = path.read_bytes()
    maint_app.post("/logout")
    assert path.read_bytes().startswith(first)  # appended, never rewritten
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    assert [x["action"] for x in lines] == ["login", "login", "logout"]
    assert lines[0]["result"].startswith("failed") and lines[1]["result"] == "ok"
    for rec in lines:
        assert set(rec) == {"time", "user", "remote", "action", "target", "result"}
        assert rec["time"].endswith("Z") and rec["remote"] == "192.0.2.10"
    assert (path.stat().st_mode & 0o777) == 0o600

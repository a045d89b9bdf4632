"""Request rules and bad input through the Flask test client: cross-site POSTs, CSRF tokens, security
headers, hostile form values, path traversal, uploads, and pages whose source does not answer."""
from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from endcap.maint.security import CSP
from endcap.sim.journal import write_journal
from tests.fixtures.maint import ORIGIN, SAME

PAGES = ["/", "/logs", "/services", "/update", "/models", "/pos", "/cameras", "/signage", "/network", "/audit", "/account"]


@pytest.fixture
def logged_in(maint_app):
    assert maint_app.login().status_code == 302
    return maint_app


def test_every_page_answers_and_says_not_answering(logged_in):
    for p in PAGES:
        r = logged_in.get(p)
        assert r.status_code == 200, p
        h = r.headers
        assert h["Content-Security-Policy"] == CSP and "default-src 'self'" in CSP and "frame-ancestors 'none'" in CSP
        assert h["X-Content-Type-Options"] == "nosniff" and h["X-Frame-Options"] == "DENY"
        assert h["Referrer-Policy"] == "no-referrer" and h["Cache-Control"] == "no-store"
        assert h["Strict-Transport-Security"].startswith("max-age=")
        body = r.get_data(as_text=True)
        assert "<script>" not in body and " on" + "click=" not in body  # no inline script
    for p in ("/update", "/models", "/pos", "/cameras", "/signage"):
        assert "not answering" in logged_in.get(p).get_data(as_text=True), p
    assert "not answering" in logged_in.get("/").get_data(as_text=True)
    assert logged_in.get("/api/update/status").get_json()["ok"] is False
    # static JS is a file, served with the same headers
    r = logged_in.get("/static/maint.js")
    assert r.status_code == 200 and r.headers["X-Content-Type-Options"] == "nosniff"


@pytest.mark.parametrize("headers, why", [
    ({}, "no Origin header"),
    ({"Origin": "https://evil.example"}, "is not"),
    ({"Origin": "null"}, "is not"),
    ({"Origin": "null", "Sec-Fetch-Site": "cross-site"}, "is not"),
    ({"Origin": ORIGIN + ".evil.example"}, "is not"),
    ({"Origin": ORIGIN, "Sec-Fetch-Site": "cross-site"}, "Sec-Fetch-Site"),
    ({"Origin": ORIGIN, "Sec-Fetch-Site": "same-site"}, "Sec-Fetch-Site"),
])
def test_cross_site_posts_are_refused_and_audited(logged_in, headers, why):
    token = logged_in.csrf()
    r = logged_in.client.post("/services/restart", base_url=ORIGIN, data={"csrf": token, "unit": "endcap-pos.service"},
                              headers=headers)
    assert r.status_code == 403 and why in r.get_data(as_text=True)
    rec = logged_in.audit()[0]
    assert rec["action"] == "csrf" and rec["target"] == "/services/restart" and rec["result"].startswith("refused")
    # the login form too: a cross-site login cannot plant a session
    r = logged_in.new_client().post("/login", base_url=ORIGIN, data={"user": "technician", "password": "x"}, headers=headers)
    assert r.status_code == 403


def test_csrf_token_is_required_with_a_session(logged_in):
    for data in ({"unit": "endcap-pos.service"}, {"unit": "endcap-pos.service", "csrf": "forged"},
                 {"unit": "endcap-pos.service", "csrf": ""}):
        r = logged_in.post("/services/restart", data, csrf=False)
        assert r.status_code == 403 and "security token" in r.get_data(as_text=True)
    # another session's token does not work either
    other = logged_in.new_client("192.0.2.77")
    logged_in.login(other)
    r = logged_in.post("/services/restart", {"unit": "endcap-pos.service", "csrf": logged_in.csrf(other)}, csrf=False)
    assert r.status_code == 403


def test_units_outside_the_allowlist_are_refused(logged_in):
    for unit in ("sshd.service", "../../endcap-pos.service", "endcap-pos.service; reboot", "dbus.service", "x" * 500):
        r = logged_in.post("/services/restart", {"unit": unit})
        assert r.status_code == 403, unit
        assert "is not one the maintenance page may control" in r.get_data(as_text=True)
    rec = logged_in.audit()[0]
    assert rec["action"] == "restart" and rec["result"].startswith("refused")


def test_hostile_form_values_are_refused_or_shown_as_text(logged_in):
    for q in ({"unit": "<script>alert(1)</script>"}, {"priority": "9"}, {"priority": "-1"}, {"since": "--output=export"},
              {"since": "; rm -rf /"}, {"text": "x" * 201}, {"text": "a\x00b"}):
        r = logged_in.get("/logs", query_string=q)
        assert r.status_code == 400, q
        assert "<script>alert(1)</script>" not in r.get_data(as_text=True)
    for form in ({"mode": "static", "address": "<img src=x onerror=alert(1)>"}, {"mode": "static", "address": "10.0.0.0/8"},
                 {"mode": "static", "address": "10.1.2.3/24", "gateway": "10.9.9.9"},
                 {"mode": "static", "address": "10.1.2.3/24", "dns": "1.1.1.1 evil.example"},
                 {"mode": "bridge"}, {"mode": "static", "address": "10.1.2.3/24\nDNS=6.6.6.6"}):
        r = logged_in.post("/network/apply", form)
        assert r.status_code == 400, form
        assert "<img src=x" not in r.get_data(as_text=True)
    assert not (logged_in.root / "network").exists()
    for display in ("../x", "<b>", "", "a" * 65):
        assert logged_in.post("/signage/push", {"display": display}).status_code == 400
    for cam in ("../../etc/passwd", "<x>", ""):
        assert logged_in.get("/cameras/snapshot.jpg", query_string={"camera": cam}).status_code == 400
    # a hostile user name is stored and shown as text, never as markup
    logged_in.login(logged_in.new_client("192.0.2.200"), user='<script>alert("x")</script>', password="nope")
    body = logged_in.get("/audit").get_data(as_text=True)
    assert '<script>alert("x")</script>' not in body and "&lt;script&gt;" in body


def test_path_traversal_in_downloads_is_refused_and_audited(logged_in):
    for name in ("../../../etc/passwd", "/etc/passwd", "..%2f..%2fetc%2fpasswd", "diag-20260101T000000Z.tar.gz/../../x",
                 "diag-../../x.tar.gz", "audit.jsonl", "../maint.db"):
        r = logged_in.get("/logs/download", query_string={"file": name})
        assert r.status_code == 400, name
        rec = logged_in.audit()[0]
        assert rec["action"] == "download" and rec["result"].startswith("refused"), name
    assert logged_in.get("/logs/download", query_string={"file": "diag-20260101T000000Z.tar.gz"}).status_code == 404


def test_logs_from_a_real_journal_filtered_and_redacted_diagnostics(logged_in):
    t = int(logged_in.clock() * 1e6)
    write_journal(logged_in.root / "journal" / "test.journal", [
        {"__REALTIME_TIMESTAMP": str(t), "_SYSTEMD_UNIT": "endcap-pos.service", "PRIORITY": "6",
         "MESSAGE": "connected to postgresql://pos:s3cr3t@db.store/pos"},
        {"__REALTIME_TIMESTAMP": str(t + 1), "_SYSTEMD_UNIT": "endcap-vision.service", "PRIORITY": "3",
         "MESSAGE": "camera cam-1 lost its stream"},
        {"__REALTIME_TIMESTAMP": str(t + 2), "_SYSTEMD_UNIT": "endcap-offers.service", "PRIORITY": "6",
         "MESSAGE": "offer for shopper_id=LOYAL-42 token=abc123"},
    ])
    body = logged_in.get("/logs").get_data(as_text=True)
    assert "camera cam-1 lost its stream" in body and "s3cr3t" not in body and "LOYAL-42" not in body
    body = logged_in.get("/logs", query_string={"unit": "endcap-vision.service"}).get_data(as_text=True)
    assert "camera cam-1" in body and "postgresql" not in body
    body = logged_in.get("/logs", query_string={"priority": "3"}).get_data(as_text=True)
    assert "camera cam-1" in body and "offer for" not in body
    body = logged_in.get("/logs", query_string={"text": "OFFER"}).get_data(as_text=True)
    assert "offer for" in body and "camera cam-1" not in body
    logged_in.paths.config_dir.mkdir(parents=True, exist_ok=True)
    logged_in.paths.config_file.write_text('[pos]\nurl = "postgresql://pos:s3cr3t@db/pos"\npassword = "hunter2"\n')
    r = logged_in.post("/logs/diagnostics")
    assert r.status_code == 302
    r = logged_in.get(r.headers["Location"].replace(ORIGIN, ""))
    assert r.status_code == 200 and r.headers["Content-Type"] == "application/gzip"
    with tarfile.open(fileobj=io.BytesIO(r.data)) as tar:
        names = tar.getnames()
        text = "".join(tar.extractfile(n).read().decode() for n in names)
    assert set(names) >= {"journal.txt", "health.json", "versions.json", "endcap.toml"}
    assert "camera cam-1 lost its stream" in text
    for secret in ("s3cr3t", "hunter2", "LOYAL-42", "abc123"):
        assert secret not in text


def _upload(app, body: bytes, *, length: int | None = None):
    headers = {**SAME, "X-CSRF-Token": app.csrf(), "X-Requested-With": "fetch", "Content-Type": "application/octet-stream"}
    if length is not None:
        headers["Content-Length"] = str(length)
    return app.client.post("/update/upload", base_url=ORIGIN, data=body, headers=headers)


def test_upload_refuses_non_bundles_and_oversized_files(maint_factory, updater_peer):
    app = maint_factory(max_upload_bytes=1000)
    app.login()
    uploads = app.state / "uploads"
    # no updater answering: nothing is taken in that nobody could install
    r = _upload(app, b"hsqs" + b"\0" * 500)
    assert r.status_code == 503 and "updater is not answering" in r.get_json()["message"]
    assert not uploads.exists() or not any(uploads.iterdir())
    peer = updater_peer(app.paths)
    r = _upload(app, b"PK\x03\x04 a zip file" + b"\0" * 100)
    assert r.status_code == 415 and "not a RAUC bundle" in r.get_json()["message"]
    r = _upload(app, b"hsqs" + b"\0" * 2000)
    assert r.status_code == 413 and "limit of 1000 bytes" in r.get_json()["message"]
    r = _upload(app, b"")
    assert r.status_code in (411, 415)  # empty: no length, or no squashfs header
    assert not uploads.exists() or not any(uploads.iterdir())
    # the updater answers with a refusal: it never took the file, so the page removes it
    peer.refuse = "refused: [signature] the bundle's signature does not verify"
    r = _upload(app, b"hsqs" + b"\0" * 500)
    assert r.status_code == 422 and "signature" in r.get_json()["message"]
    assert not any(uploads.iterdir())
    results = [x["result"] for x in app.audit() if x["action"] == "install"]
    assert any("not a RAUC bundle" in x for x in results) and any("limit" in x for x in results)
    assert any("signature" in x for x in results)


def test_upload_is_handed_over_under_its_own_name_and_waits_for_a_busy_updater(maint_factory, updater_peer):
    app = maint_factory(max_upload_bytes=1000)
    app.login()
    peer = updater_peer(app.paths)
    assert app.get("/api/update/ready").get_json() == {"ok": True, "message": ""}
    r = _upload(app, b"hsqs" + b"1" * 500)
    assert r.status_code == 200 and r.get_json()["state"] == "verifying"
    first = Path(peer.taken[0])
    assert first.read_bytes() == b"hsqs" + b"1" * 500  # accepted: the updater owns it now, the page keeps off
    # the updater is busy with it: the probe says so, and an upload is refused without touching anything
    ready = app.get("/api/update/ready").get_json()
    assert ready["ok"] is False and "busy" in ready["message"]
    r = _upload(app, b"hsqs" + b"2" * 500)
    assert r.status_code == 409 and "busy" in r.get_json()["message"]
    assert sorted((app.state / "uploads").iterdir()) == [first] and len(peer.taken) == 1
    # its verification failed (the reason is in the updater's status): a new upload may go, under a new name,
    # and the first file is left to the updater (never glob-deleted by the page)
    peer.state = "failed"
    st = app.get("/api/update/status").get_json()
    assert st["state"] == "failed" and st["busy"] is False
    r = _upload(app, b"hsqs" + b"3" * 500)
    assert r.status_code == 200
    second = Path(peer.taken[1])
    assert second != first and first.exists() and second.read_bytes() == b"hsqs" + b"3" * 500
    # a stale password: the probe sends the technician to re-authenticate before anything is sent
    app.clock.advance(app.cfg.reauth_s + 1)
    assert app.get("/api/update/ready").get_json()["reauth"] is True


def test_network_apply_then_confirm_or_roll_back(maint_factory):
    app = maint_factory(network_confirm_s=0.5)
    app.login()
    path = app.root / "network" / "10-endcap-eth0.network"
    path.parent.mkdir()
    path.write_text("[Match]\nName=eth0\n[Network]\nDHCP=yes\n")
    net = app.maint.network
    assert app.post("/network/apply", {"mode": "static", "address": "10.1.2.3/24", "gateway": "10.1.2.1",
                                       "dns": "10.1.2.1"}).status_code == 302
    assert "Address=10.1.2.3/24" in path.read_text() and "Gateway=10.1.2.1" in path.read_text()
    assert "Keep these settings" in app.get("/network").get_data(as_text=True)
    assert net.settled.wait(10)  # nobody confirmed: it rolls back by itself
    assert path.read_text() == "[Match]\nName=eth0\n[Network]\nDHCP=yes\n" and net.machine.state == "rolled-back"
    assert app.post("/network/confirm").status_code == 409
    app2 = maint_factory(network_confirm_s=30)
    app2.login()
    assert app2.post("/network/apply", {"mode": "static", "address": "10.1.2.3/24"}).status_code == 302
    assert app2.post("/network/apply", {"mode": "dhcp"}).status_code == 400  # one pending change at a time
    assert app2.post("/network/confirm").status_code == 302
    assert app2.maint.network.settled.is_set() and app2.maint.network.machine.state == "confirmed"
    assert "Address=10.1.2.3/24" in (app2.root / "network" / "10-endcap-eth0.network").read_text()
    actions = [(x["action"], x["target"]) for x in app2.audit()]
    assert ("network", "confirm") in actions and ("network", "static") in actions


OLD_NETWORK = "[Match]\nName=eth0\n[Network]\nDHCP=yes\n"


def test_network_apply_whose_reload_fails_puts_the_old_file_back(maint_factory):
    # networkd_reload on a bus address where nothing listens: the reload really fails
    app = maint_factory(network_confirm_s=30, network_reload=True)
    app.login()
    path = app.root / "network" / "10-endcap-eth0.network"
    path.parent.mkdir()
    path.write_text(OLD_NETWORK)
    for _ in range(2):  # nothing is left pending: a second try fails the same way, not "waiting for confirmation"
        r = app.post("/network/apply", {"mode": "static", "address": "10.1.2.3/24"})
        assert r.status_code == 503 and "previous settings are back" in r.get_data(as_text=True)
        assert path.read_text() == OLD_NETWORK and app.maint.network.machine.state == "failed"
        assert not (app.state / "network-pending.json").exists()
    assert any(x["action"] == "network" and x["result"].startswith("failed") for x in app.audit())


def test_network_change_unconfirmed_at_a_restart_is_rolled_back(maint_factory):
    from tests.fixtures.maint import MaintApp
    app = maint_factory(network_confirm_s=60)
    app.login()
    path = app.root / "network" / "10-endcap-eth0.network"
    path.parent.mkdir()
    path.write_text(OLD_NETWORK)
    assert app.post("/network/apply", {"mode": "static", "address": "10.1.2.3/24"}).status_code == 302
    assert "Address=10.1.2.3/24" in path.read_text() and (app.state / "network-pending.json").exists()
    # the service restarts (or the device reboots) inside the window: the new process rolls back at start
    again = MaintApp(app.root, network_confirm_s=60)
    assert path.read_text() == OLD_NETWORK and again.maint.network.machine.state == "rolled-back"
    assert not (app.state / "network-pending.json").exists()
    assert again.login().status_code == 302
    assert "rolled back" in again.get("/network").get_data(as_text=True)
    # a change made from nothing (no file before) rolls back to nothing
    path.unlink()
    assert again.post("/network/apply", {"mode": "dhcp"}).status_code == 302 and path.exists()
    MaintApp(app.root, network_confirm_s=60)
    assert not path.exists()
    for net in (app.maint.network, again.maint.network):  # end the old processes' timers
        net.confirm()


def test_refusals_without_a_session_cannot_flood_the_audit_log(maint_factory):
    app = maint_factory(audit_refusals_per_min=5)
    for i in range(20):  # wrong passwords from many addresses (then back-off refusals): all without a session
        app.login(app.new_client(f"198.51.100.{i}"), password="wrong wrong wrong")
    for _ in range(10):  # cross-site posts without a session
        app.new_client().post("/login", base_url=ORIGIN, data={"user": "x", "password": "y"}, headers={})
    recs = app.audit()
    assert len([r for r in recs if r["user"] == "-"]) == 5
    app.clock.advance(60)
    app.login(app.new_client("198.51.100.99"), password="wrong wrong wrong")
    rec = app.audit()[0]
    assert rec["user"] == "-" and "25 earlier refusal(s)" in rec.get("note", "")
    # a successful login is always recorded (once the user's back-off has run out)
    app.clock.advance(app.cfg.backoff_max_s)
    assert app.login().status_code == 302 and app.audit()[0]["result"] == "ok"

"""The real ``maint`` service over TLS, reading real services' health from the bus and restarting them
through the systemd stand-in on a private D-Bus (real processes: a restart is a new PID)."""
from __future__ import annotations

import hashlib
import socket
import ssl
import time

from cryptography import x509

from tests.fixtures.maint import Https, maint_toml, screen, start_stack
from tests.fixtures.waiting import wait_until
from tests.fixtures.maint import read_head


def wait_for(check, timeout_s: float = 30.0, what: str = "condition"):
    return wait_until(check, timeout_s, what, pause_s=0.2)



def test_tls_certificate_setup_code_and_restart_through_dbus(gateway, dbus_daemon, systemd_factory):
    sysd = start_stack(gateway, dbus_daemon, systemd_factory)
    info = screen(gateway)
    assert info["url"].startswith("https://127.0.0.1:") and info["code"]
    cert_path = gateway.paths.service_state("maint") / "tls" / "cert.pem"
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    assert cert.public_key().curve.name == "secp256r1"
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "127.0.0.1" in [str(i) for i in sans.get_values_for_type(x509.IPAddress)]
    # the fingerprint on the service screen is the one the server presents
    port = int(info["url"].rsplit(":", 1)[1])
    ctx = ssl.create_default_context(cafile=str(cert_path))
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw, ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
        der = tls.getpeercert(binary_form=True)
        assert tls.version() in ("TLSv1.2", "TLSv1.3")
    assert ":".join(f"{b:02X}" for b in hashlib.sha256(der).digest()) == info["fingerprint"]
    # plain HTTP on the TLS port gets no page
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        raw.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        raw.settimeout(10)
        try:
            answer = raw.recv(4096)
        except ConnectionResetError:
            answer = b""
        assert b"Endcap" not in answer
    # the code is on the service screen only: the journal names the file, never the code
    log = gateway.log("maint")
    assert info["code"] not in log and "maint-screen.txt" in log

    web = Https(info["url"], cert_path)
    status, headers, _ = web.request("GET", "/")
    assert status == 302 and "/login" in headers["Location"]
    assert web.request("POST", "/setup", {"code": info["code"]})[0] == 302
    assert web.post("/account", {"new": "store 42 technician", "again": "store 42 technician"})[0] == 302
    assert web.cookie.startswith("__Host-endcap_session=")

    # signage runs (a real process under the stand-in) but no screen acknowledges: unhealthy, in plain words
    body = wait_for(lambda: (b := web.request("GET", "/")[2]) and 'id="svc-signage" class="bad"' in b and b,
                      what="signage shown unhealthy")
    assert "needs attention" in body
    before = sysd.unit("endcap-signage.service")
    assert before["active"] == "active" and before["pid"] > 0
    status, _, body = web.request("GET", "/services")
    assert status == 200 and "active (running)" in body
    assert web.post("/services/restart", {"unit": "endcap-signage.service"})[0] == 302
    after = sysd.wait_unit("endcap-signage.service", lambda s: s["restarts"] == 1 and s["active"] == "active")
    assert after["pid"] != before["pid"]
    # not on the allowlist: refused, audited, nothing restarted
    status, _, body = web.post("/services/restart", {"unit": "dbus.service"})
    assert status == 403
    status, _, body = web.request("GET", "/audit")
    assert "endcap-signage.service" in body and "dbus.service" in body and "127.0.0.1" in body
    # reboot is logind's orderly Reboot(false) (systemd1's forced Reboot is not offered by the stand-in)
    assert web.post("/services/reboot", {})[0] == 200
    wait_for(sysd.reboot_file.exists, what="Reboot called")
    assert "login1 interactive=False" in sysd.reboot_file.read_text()
    assert sysd.wait_unit("endcap-signage.service", lambda s: s["active"] == "inactive")["pid"] == 0


def test_health_page_reads_the_bus_and_service_survives_dead_sources(gateway, dbus_daemon, systemd_factory):
    start_stack(gateway, dbus_daemon, systemd_factory, services=["signage", "pos"])
    info = screen(gateway)
    web = Https(info["url"], gateway.paths.service_state("maint") / "tls" / "cert.pem")
    web.request("POST", "/setup", {"code": info["code"]})
    web.post("/account", {"new": "store 42 technician", "again": "store 42 technician"})
    def signage_reported():
        body = web.request("GET", "/")[2]
        row = body.split('id="svc-signage"')[1].split("</tr>")[0]
        return body if "no health report" not in row else None
    body = wait_for(signage_reported, what="signage health received")
    assert 'id="svc-pos" class="bad"' in body and "not answering" in body  # pos is not running at all
    for page in ("/pos", "/models", "/update", "/cameras"):
        status, _, body = web.request("GET", page)
        assert status == 200 and "not answering" in body, page


def _tls_post_head(url: str, cafile, headers: dict, length: int):
    """A TLS socket that sent only the head of a POST /update/upload announcing ``length`` bytes."""
    host, port = url.rsplit("//", 1)[1].rsplit(":", 1)
    raw = socket.create_connection((host, int(port)), timeout=20)
    t = ssl.create_default_context(cafile=str(cafile)).wrap_socket(raw, server_hostname=host)
    head = f"POST /update/upload HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Length: {length}\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    t.sendall(head.encode())
    return t



def test_large_upload_without_a_session_is_refused_before_any_body_reaches_the_disk(gateway):
    gateway.write_config(maint_toml(services=[], units=[], systemd_bus="unix:path=" + str(gateway.root / "no-bus"),
                                    journal_directory=str(gateway.root / "journal"),
                                    network_dir=str(gateway.root / "network")))
    gateway.start("maint")
    info = screen(gateway)
    state = gateway.paths.service_state("maint")
    cert = state / "tls" / "cert.pem"
    spool, uploads = state / "spool", state / "uploads"
    # nobody logged in: a 100 MB upload is answered on its head, and the connection is dropped
    t = _tls_post_head(info["url"], cert, {"Origin": info["url"], "Content-Type": "application/octet-stream"}, 100_000_000)
    started = time.monotonic()
    answer = read_head(t)
    assert answer.startswith(b"HTTP/1.1 401 ") and time.monotonic() - started < 10, answer[:200]
    sent = 0
    try:
        while sent < 100_000_000:
            t.sendall(b"hsqs" + b"\0" * ((1 << 20) - 4))
            sent += 1 << 20
    except OSError:
        pass
    finally:
        t.close()
    assert sent < 20_000_000
    assert not any(spool.iterdir()) and (not uploads.exists() or not any(uploads.iterdir()))

    # logged in, but without the CSRF token: refused the same way
    web = Https(info["url"], cert)
    web.request("POST", "/setup", {"code": info["code"]})
    assert web.post("/account", {"new": "store 42 technician", "again": "store 42 technician"})[0] == 302
    t = _tls_post_head(info["url"], cert, {"Origin": info["url"], "Cookie": web.cookie}, 100_000_000)
    assert read_head(t).startswith(b"HTTP/1.1 403 ")
    t.close()
    # with the token (and a fresh password) the body reaches the page, which says no updater answers
    status, _, body = web.request("POST", "/update/upload", body=b"hsqs" + b"\0" * (2 << 20),
                                  headers={"X-CSRF-Token": web.csrf(), "X-Requested-With": "fetch",
                                           "Content-Type": "application/octet-stream"})
    assert status == 503 and "updater is not answering" in body
    assert not any(spool.iterdir()) and (not uploads.exists() or not any(uploads.iterdir()))
    # the setup code never reached the journal
    assert info["code"] not in gateway.log("maint")

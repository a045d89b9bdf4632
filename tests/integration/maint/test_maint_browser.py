"""End to end in Debian's Chromium against the real TLS service: first login with the setup code, see an
unhealthy service and restart it through the systemd stand-in (real D-Bus, real processes), refuse a
tampered bundle (the reason shown from the updater's status the page polls) and install a signed one
through the real updater and ``rauc service`` while the page shows progress, push a test offer; one screenshot per page (``ENDCAP_SCREENSHOTS=1`` copies them to
docs/images/maint-<page>.png)."""
from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

from endcap.launcher import wait_health
from endcap.sim.devota import SLOT_BYTES
from endcap.sim.journal import write_journal
from tests.fixtures.browser import DOCS_IMAGES, VIEWPORT
from tests.fixtures.maint import screen, start_stack
from tests.fixtures.rauc import make_bundle_file
from tests.integration.updater.harness import Running

PASSWORD = "store 42 technician"


def shoot(page, name: str, directory: Path) -> None:
    path = directory / f"maint-{name}.png"
    page.screenshot(path=str(path), full_page=True)
    if os.environ.get("ENDCAP_SCREENSHOTS") == "1":
        DOCS_IMAGES.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, DOCS_IMAGES / path.name)


def noisy_rootfs(path: Path, label: str) -> Path:
    """An ext4 rootfs image with 3 MiB of random bytes: its bundle is over 1 MiB, so Chromium's upload goes
    through the TLS front end's session check (bodies up to 1 MiB are relayed without one)."""
    content = path.parent / (path.name + ".d")
    (content / "etc").mkdir(parents=True)
    (content / "etc" / "endcap-release").write_text(label + "\n")
    (content / "noise.bin").write_bytes(os.urandom(3 << 20))
    with open(path, "wb") as f:
        f.truncate(SLOT_BYTES)
    subprocess.run(["mkfs.ext4", "-q", "-F", "-O", "^metadata_csum_seed", "-d", str(content), str(path)], check=True)
    shutil.rmtree(content)
    return path


def test_technician_session_in_chromium(gateway, dbus_daemon, systemd_factory, rauc_device, fleet_test_pki, chromium,
                                        answering, tmp_path):
    now_us = int(time.time() * 1e6)
    write_journal(gateway.root / "journal" / "system.journal", [
        {"__REALTIME_TIMESTAMP": str(now_us - 3_000_000), "_SYSTEMD_UNIT": "endcap-signage.service", "PRIORITY": "6",
         "MESSAGE": "signage ready: 1 display"},
        {"__REALTIME_TIMESTAMP": str(now_us - 2_000_000), "_SYSTEMD_UNIT": "endcap-signage.service", "PRIORITY": "4",
         "MESSAGE": "display aisle-7 has not acknowledged for 10 s"},
        {"__REALTIME_TIMESTAMP": str(now_us - 1_000_000), "_SYSTEMD_UNIT": "endcap-pos.service", "PRIORITY": "3",
         "MESSAGE": "poll failed: connection to postgresql://pos:hunter2@10.0.0.5/pos refused"},
    ])
    sysd = start_stack(gateway, dbus_daemon, systemd_factory, services=["signage", "updater"],
                       units=["endcap-signage.service", "endcap-updater.service"])
    updater = Running(gateway.root, rauc_device)
    good = make_bundle_file(tmp_path / "endcap-1.1.0.raucb", version="1.1.0", pki=fleet_test_pki,
                            image=noisy_rootfs(tmp_path / "rootfs.ext4", "endcap 1.1.0"))
    assert good.stat().st_size > 2 << 20
    bad = tmp_path / "endcap-1.1.0-tampered.raucb"
    data = bytearray(good.read_bytes())
    data[len(data) // 3] ^= 0xFF  # one flipped byte inside the signed payload
    bad.write_bytes(bytes(data))
    info = screen(gateway)
    url = info["url"]
    shots = tmp_path / "shots"
    shots.mkdir()
    context = chromium.new_context(viewport=VIEWPORT, ignore_https_errors=True)
    page = context.new_page()
    dialogs: list[str] = []

    def accept(d):
        dialogs.append(d.message)
        d.accept()
    page.on("dialog", accept)
    try:
        updater.wait(lambda s: s.booted == "A")
        # first login: the one-time code from the HDMI service screen, then the password
        page.goto(url + "/")
        assert page.url.startswith(url + "/login")
        assert page.inner_text("#fingerprint") == info["fingerprint"]
        shoot(page, "login", shots)
        page.fill("#code", info["code"])
        page.click("text=Continue")
        page.wait_for_url(url + "/account")
        page.fill("#new", PASSWORD)
        page.fill("#again", PASSWORD)
        page.click("button:has-text('Set password')")
        page.wait_for_selector("#done")
        shoot(page, "account", shots)
        cookie = [c for c in context.cookies() if c["name"] == "__Host-endcap_session"][0]
        assert cookie["secure"] and cookie["httpOnly"] and cookie["sameSite"] == "Strict"

        # an unhealthy service, in plain words
        wait_health(gateway.paths, "signage", lambda h: not h.ok)
        page.goto(url + "/")
        for _ in range(100):  # each reload is a round trip to the page: until its feed has the report
            if "no health report" not in page.inner_text("#svc-signage"):
                break
            page.reload()
        assert page.get_attribute("#svc-signage", "class") == "bad"
        shoot(page, "overview", shots)

        # restart it: confirmation dialog, D-Bus RestartUnit, a new process
        before = sysd.unit("endcap-signage.service")["pid"]
        page.goto(url + "/services")
        page.click("#unit-endcap-signage-service button:has-text('Restart')")
        page.wait_for_selector("#restarted")
        assert dialogs and "Restart endcap-signage.service" in dialogs[-1]
        after = sysd.wait_unit("endcap-signage.service", lambda s: s["restarts"] == 1 and s["active"] == "active")
        assert after["pid"] != before
        page.reload()
        assert "active (running)" in page.inner_text("#unit-endcap-signage-service .state")
        # the updater runs in this test process, not under the stand-in: systemd has no such unit loaded
        assert page.inner_text("#unit-endcap-updater-service .state") == "inactive (not loaded)"
        shoot(page, "services", shots)

        page.goto(url + "/logs")
        assert "has not acknowledged" in page.inner_text("main") and "hunter2" not in page.content()
        shoot(page, "logs", shots)

        # a tampered bundle is refused by the updater (RAUC's signature check); the reason arrives in the
        # updater's status, which the page polls and shows
        page.goto(url + "/update")
        page.set_input_files("#bundle", str(bad))
        page.click("#upload")
        page.wait_for_selector("body[data-update-state=failed]", timeout=60_000)
        reason = page.inner_text("#upload-result")
        assert page.get_attribute("#upload-result", "class") == "bad"
        assert "refused" in reason and "signature" in reason, reason
        st = updater.wait(lambda s: s.state == "failed")
        assert st.last_result == "refused" and "signature" in st.history[-1].reason
        # the signed one is installed, with progress on the page
        page.set_input_files("#bundle", str(good))
        page.click("#upload")
        page.wait_for_selector("body[data-upload=accepted]", timeout=60_000)
        page.wait_for_selector("body[data-update-state=rebooting]", timeout=120_000)
        assert page.inner_text("#progress-text").startswith("rebooting")
        st = updater.wait(lambda s: s.state == "rebooting")
        assert st.primary == "B" and st.last_result == "installed"
        page.reload()
        shoot(page, "update", shots)

        # push a test offer to a screen
        page.goto(url + "/signage")
        page.click("#screen-aisle-7 button:has-text('Push a test offer')")
        page.wait_for_selector("#pushed")
        shoot(page, "signage", shots)

        # models, POS link and cameras as drawn from typed replies on the bus
        answering(gateway.paths)
        page.goto(url + "/models")
        assert "basket-blend 2026.11.2" in page.inner_text("#active")
        shoot(page, "models", shots)
        page.goto(url + "/pos")
        page.click("#pos-test")
        page.wait_for_selector("#test-result.ok")
        shoot(page, "pos", shots)
        page.goto(url + "/cameras")
        page.wait_for_selector("img.snapshot")
        assert page.eval_on_selector("img.snapshot", "i => i.naturalWidth") == 640
        shoot(page, "cameras", shots)

        # network: applied at once, pending until confirmed
        page.goto(url + "/network")
        page.check("input[value=static]")
        page.fill("input[name=address]", "192.168.7.20/24")
        page.fill("input[name=gateway]", "192.168.7.1")
        page.click("button:has-text('Apply')")
        page.wait_for_selector("#pending")
        assert "Address=192.168.7.20/24" in page.inner_text("#current")
        shoot(page, "network", shots)
        page.click("#confirm")
        page.wait_for_selector("text=The last change was confirmed.")

        page.goto(url + "/audit")
        shoot(page, "audit", shots)
        audit = page.inner_text("main")
        for action in ("setup-code", "password", "restart", "install"):
            assert action in audit
    finally:
        context.close()
        updater.stop()

"""Boot of the dev image under QEMU TCG to "all services healthy", against a bare Debian image of the same
build (the same disk with no Endcap unit enabled: ``endcap_image.variants.bare_disk``) booting to
``systemctl is-system-running`` = running, in the same run.

Both are measured on their second boot (the first one makes machine state: the Endcap guest is provisioned
then, its TPM enrolled and its model installed through trust), from QEMU's start. The Endcap run also
records when every unit was started (``is-system-running``). A headless Chromium on the host is the
store's screen (signage is healthy only while a screen acknowledges); its page, opened on the first boot,
reconnects by itself. ``python -m bench image_boot``.
"""
from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from bench.common import make_result, write_result

REPO = Path(__file__).resolve().parents[1]
TIMEOUT_S = 900


def _second_boot(g, first_boot) -> tuple[float, float]:
    """Boot, do ``first_boot(g)``, reboot; the second QEMU start (monotonic) and the seconds from it until
    ``system running``."""
    from endcap_image import provision

    g.boot()
    g.login(TIMEOUT_S)
    first_boot(g)
    g.send("systemctl reboot\n")
    g.wait_exit(300)
    t0 = time.monotonic()
    g.boot()
    g.login(TIMEOUT_S)
    provision.wait_running(g, TIMEOUT_S)
    return t0, time.monotonic() - t0


def run() -> dict:
    sys.path.insert(0, str(REPO / "image" / "debian"))
    from endcap_image import build
    from playwright.sync_api import sync_playwright

    from bench.browser import launch_chromium

    img = build.build(version="1.0.0")
    with sync_playwright() as pw, tempfile.TemporaryDirectory(prefix="endcap-bench-boot-") as td:
        browser = launch_chromium(pw)
        try:
            return _measure(img, Path(td), browser)
        finally:
            browser.close()


def _measure(img, work: Path, browser) -> dict:
    from endcap_image import provision, variants
    from endcap_image.guest import Guest

    def first_boot(g) -> None:
        provision.wait_running(g, TIMEOUT_S)
        provision.install_model(g)
        provision.open_screen(browser.new_context(service_workers="allow"), g)

    bare = Guest(work / "bare", variants.bare_disk(img, work / "bare.img"))
    try:
        # no updater there to confirm the booted slot: mark it good by hand, or GRUB tries the empty B next
        _, bare_s = _second_boot(bare, lambda g: g.check("rauc status mark-good", timeout_s=120))
        enabled = bare.sh("systemctl list-unit-files --state=enabled --no-legend 'endcap-*'").out.split()
    finally:
        bare.stop()
    if enabled:
        raise RuntimeError(f"the bare image still enables {enabled}")

    g = Guest(work / "endcap", img.disk)
    signer = provision.make_signer()
    provision.enrol_tpm(g.tpm_state, signer)
    g.media = (provision.model_media(work, signer),)
    try:
        t0, started_s = _second_boot(g, first_boot)
        r = provision.wait_healthy(g, provision.services(img.info), TIMEOUT_S)
        healthy_s = time.monotonic() - t0
    finally:
        g.stop()
    if r.rc != 0:
        raise RuntimeError(f"services not healthy after the second boot:\n{r.out}")
    runs = [{"value": healthy_s, "anchor": bare_s, "units_started_s": started_s}]
    result = make_result(name="image_boot", metric="QEMU TCG boot to every Endcap service healthy", unit="s",
                         target="value <= 300",
                         anchor_name="bare Debian image of the same build (no Endcap unit) to system running",
                         runs=runs)
    write_result(result)
    return result

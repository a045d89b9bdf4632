"""Update downtime on the dev image under QEMU TCG: from the reboot (the guest has shut down and QEMU
starts again) to every Endcap service reporting healthy, after the updater installed v2 into slot B,
against a plain reboot of the same provisioned guest (v1 on A, nothing installed) in the same run.

A headless Chromium on the host is the store's screen (signage is healthy only while a screen acknowledges);
its page stays open across the reboots and reconnects by itself. The update run also records when the updater committed the new slot (health gate passed, marked good)
and how long the install took (bundle handed over -> the guest shut down). ``python -m bench update_downtime``.
"""
from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from bench.common import make_result, write_result

REPO = Path(__file__).resolve().parents[1]
BOOT_TIMEOUT_S = 900
HEALTH_TIMEOUT_S = 600
BUNDLES = "/run/endcap-bundles"


def _healthy_after_boot(g, provision, services: list[str]) -> float:
    """Boot ``g`` (already shut down), log in, ring a sale and wait until every service is healthy; seconds
    from QEMU's start."""
    t0 = time.monotonic()
    g.boot()
    g.login(BOOT_TIMEOUT_S)
    r = provision.wait_healthy(g, services, HEALTH_TIMEOUT_S)
    if r.rc != 0:
        raise RuntimeError(f"services not healthy after the reboot:\n{r.out}")
    return time.monotonic() - t0


def run() -> dict:
    sys.path.insert(0, str(REPO / "image" / "debian"))
    from endcap_image import build, variants
    from playwright.sync_api import sync_playwright

    from bench.browser import launch_chromium

    img = build.build(version="1.0.0")
    v2 = variants.bundle(img, "2.0.0")
    with sync_playwright() as pw, tempfile.TemporaryDirectory(prefix="endcap-bench-update-") as td:
        browser = launch_chromium(pw)
        try:
            return _measure(img, v2, Path(td), browser)
        finally:
            browser.close()


def _measure(img, v2, work: Path, browser) -> dict:
    from endcap_image import provision, variants
    from endcap_image.guest import Guest
    from endcap_image.updates import install_bundle, wait_status

    g = Guest(work / "guest", img.disk)
    signer = provision.make_signer()
    provision.enrol_tpm(g.tpm_state, signer)
    g.media = (provision.model_media(work, signer), variants.media([v2], work))
    try:
        g.boot()
        g.login(BOOT_TIMEOUT_S)
        provision.wait_running(g, BOOT_TIMEOUT_S)
        provision.install_model(g)
        provision.open_screen(browser.new_context(service_workers="allow"), g)
        # anchor: a plain reboot of the provisioned v1 guest
        g.send("systemctl reboot\n")
        g.wait_exit(300)
        plain = _healthy_after_boot(g, provision, provision.services(img.info))
        # the update: the updater installs v2 into B and reboots into it
        g.check(f"mkdir -p {BUNDLES} && mount -o ro /dev/vdc {BUNDLES}")
        t_install = time.monotonic()
        install_bundle(g, f"{BUNDLES}/{v2.name}")
        g.wait_exit(1800)
        install_s = time.monotonic() - t_install
        t0 = time.monotonic()
        updated = _healthy_after_boot(g, provision, provision.services(img.info))
        st = wait_status(g, HEALTH_TIMEOUT_S, last_result="committed", version="2.0.0")
        committed = time.monotonic() - t0
    finally:
        g.stop()
    if st["booted"] != "B":
        raise RuntimeError(f"the update did not boot slot B: {st}")
    runs = [{"value": updated, "anchor": plain, "committed_s": committed, "install_s": install_s}]
    result = make_result(name="update_downtime", metric="QEMU TCG reboot into the updated slot to every service healthy",
                         unit="s", target="ratio <= 1.5",
                         anchor_name="plain reboot of the same provisioned guest to every service healthy", runs=runs)
    write_result(result)
    return result

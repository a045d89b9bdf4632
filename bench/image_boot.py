"""Boot of the dev image under QEMU TCG: QEMU start -> every unit started (``systemctl is-system-running
--wait`` says running, all Endcap services READY), against the same boot reaching the console login
(systemd up, where a bare Debian image of the same build stops), in the same run.

"All services healthy" needs a provisioned guest (enrolled TPM, installed model, a screen open): the
system tests do that (tests/system/test_boot.py); this benchmark measures the unprovisioned boot.
``python -m bench image_boot``.
"""
from __future__ import annotations

import re
import sys
import tempfile
import time
from pathlib import Path

from bench.common import make_result, write_result

REPO = Path(__file__).resolve().parents[1]
TIMEOUT_S = 900


def run() -> dict:
    sys.path.insert(0, str(REPO / "image" / "debian"))
    from endcap_image import build
    from endcap_image.guest import Guest

    img = build.build(version="1.0.0")
    units = [u for u in img.info["units"] if u.startswith("endcap-")]
    with tempfile.TemporaryDirectory(prefix="endcap-bench-boot-") as td:
        g = Guest(Path(td), img.disk)
        t0 = time.monotonic()
        g.boot()
        try:
            g.wait_for(re.compile(rb"root@[\w-]+:~# "), TIMEOUT_S)
            login = time.monotonic() - t0
            g.login(60)  # the prompt is there already: quiets the console for the commands
            state = g.sh("systemctl is-system-running --wait", timeout_s=TIMEOUT_S).out.strip().splitlines()[-1]
            started = time.monotonic() - t0
            active = g.sh("systemctl is-active " + " ".join(units), timeout_s=60).out.split()
        finally:
            g.stop()
    if state != "running" or active != ["active"] * len(units):
        raise RuntimeError(f"boot ended {state!r}, units {dict(zip(units, active))}")
    runs = [{"value": started, "anchor": login, "units": units}]
    result = make_result(name="image_boot", metric="QEMU TCG boot to every Endcap unit started", unit="s",
                         target="value <= 300", anchor_name="same boot to the console login (bare systemd)",
                         runs=runs)
    write_result(result)
    return result

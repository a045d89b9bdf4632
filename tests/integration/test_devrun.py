"""``endcap run`` (what ``make run`` calls): the whole gateway comes up on this host against the simulated
store, shows baskets and healthy services, and stops every child cleanly."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile

from endcap.gateway import SERVICES


def test_endcap_run_shows_the_gateway_working_and_stops_cleanly():
    root = tempfile.mkdtemp(prefix="ecr-")
    try:
        proc = subprocess.Popen([sys.executable, "-m", "endcap.cli", "run", "--root", root, "--speed", "7200", "--duration", "120"],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
        lines: list[str] = []
        try:
            for line in proc.stdout:  # read until enough has been shown, bounded by the timeout below
                lines.append(line)
                shown = "".join(lines)
                if shown.count("basket ") >= 3 and all(f"{svc} health: ok" in shown for svc in SERVICES):
                    break
        finally:
            os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C does
            out, _ = proc.communicate(timeout=60)
            lines.append(out)
        shown = "".join(lines)
        assert f"root      {root}" in shown
        assert shown.count("basket ") >= 3, shown[-2000:]
        for svc in SERVICES:  # every service of the gateway came up healthy and stopped cleanly
            assert f"{svc} health: ok" in shown, svc
            assert f"stopped {svc} (exit 0)" in shown, svc
        assert "stopped sim (exit 0)" in shown and "stopped swtpm" in shown
        assert proc.returncode == 0
    finally:
        shutil.rmtree(root, ignore_errors=True)

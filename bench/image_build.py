"""Dev image build time and size: `make image` from scratch (wheels cached) against a bare mmdebstrap of
the same suite, mirror and package list without the overlay, venv or disk assembly, in the same run.

Slow (minutes, network): one run each. ``python -m bench image_build``.
"""
from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import make_result, write_result

REPO = Path(__file__).resolve().parents[1]


def _bare(cfg) -> float:
    with tempfile.TemporaryDirectory(prefix="endcap-bare-", dir=REPO / ".cache" / "endcap" / "image") as td:
        t = time.monotonic()
        subprocess.run(["mmdebstrap", "--mode=root", "--variant=minbase", "--format=directory", "--quiet",
                        f"--include={','.join(cfg.packages)}", cfg.suite, str(Path(td) / "rootfs"),
                        f"deb {cfg.mirror} {cfg.suite} main", f"deb {cfg.mirror} {cfg.suite}-updates main",
                        f"deb {cfg.security_mirror} {cfg.suite}-security main"], check=True, capture_output=True)
        took = time.monotonic() - t
        shutil.rmtree(Path(td) / "rootfs", ignore_errors=True)
        return took


def run() -> dict:
    sys.path.insert(0, str(REPO / "image" / "debian"))
    from endcap_image import build, config

    cfg = config.load()
    (REPO / ".cache" / "endcap" / "image").mkdir(parents=True, exist_ok=True)
    anchor = _bare(cfg)
    t = time.monotonic()
    img = build.build(version="1.0.0", force=True)
    value = time.monotonic() - t
    runs = [{"value": value, "anchor": anchor, "timings": img.info["timings"],
             "rootfs_used_bytes": img.info["rootfs_used_bytes"], "rootfs_fs_mib": img.info["rootfs_fs_mib"],
             "disk_mib": img.info["disk_mib"], "disk_allocated_bytes": img.info["disk_allocated_bytes"]}]
    result = make_result(name="image_build", metric="dev image build from scratch (wheels cached)", unit="s",
                         target="value <= 600", anchor_name="bare mmdebstrap minbase + same packages", runs=runs)
    write_result(result)
    return result

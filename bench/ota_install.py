"""Firmware bundle verify + install throughput through real RAUC vs ``dd`` and ``sha256sum`` of the same image.

Ours: what the updater does with a downloaded bundle — RAUC ``Info`` (CMS signature over the whole plain
bundle against the keyring) then ``InstallBundle`` into a file-backed ext4 slot (the endcap pre-install
floor handler runs; RAUC hashes and writes the image), timed to ``Completed``, over the D-Bus adapter
``endcap.updater.rauc.Rauc`` on a private dbus-daemon. The image is ~200 MB of ext4 filled with random
data, so the bundle is ~200 MB too (random data does not compress).
Anchors, same run, page cache warm: ``sha256sum`` of the bundle (the bare verify) and ``dd`` of the same
image into a file with ``conv=fsync`` (the bare write), each in the run's details; the anchor is the two
back to back (the least work an install must do: hash every byte, write every byte).
Value = image MB ÷ (verify + install seconds). Target: ≥ 80 % of the sha256sum + dd rate.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import msgspec

from bench.common import make_result
from endcap.updater.floor import FloorFile
from endcap.updater.rauc import Rauc
from tests.fixtures.rauc import make_bundle_file, make_device, make_pki

MB = 1 << 20
IMAGE_MB = 200
RUNS = 3


def _image(work: Path) -> Path:
    tree = work / "tree"
    (tree / "etc").mkdir(parents=True)
    (tree / "etc" / "endcap-release").write_text("endcap 1.1.0\n")
    with open(tree / "payload.bin", "wb") as f:
        for _ in range(IMAGE_MB - 24):  # room for the journal and metadata
            f.write(os.urandom(MB))
    img = work / "rootfs.ext4"
    subprocess.run(["mkfs.ext4", "-q", "-F", "-d", str(tree), str(img), f"{IMAGE_MB}M"], check=True,
                   capture_output=True)
    shutil.rmtree(tree)
    return img


def _timed(cmd: list[str]) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t


def _install(r: Rauc, bundle: Path) -> float:
    pause = threading.Event()
    t = time.perf_counter()
    r.info(str(bundle))
    r.install(str(bundle))
    while True:
        p = r.poll()
        if not p.running:
            break
        pause.wait(0.01)
    s = time.perf_counter() - t
    if p.result != 0:
        raise RuntimeError(f"install failed: {p.error}")
    return s


def run() -> dict:
    work = Path(tempfile.mkdtemp(prefix="ota-install-bench-", dir=os.environ.get("ENDCAP_BENCH_TMP", "/var/tmp")))
    dev = None
    try:
        pki = make_pki(work / "pki")
        image = _image(work)
        bundle = make_bundle_file(work / "b.raucb", version="1.1.0", pki=pki, image=image)
        dev = make_device(work / "device", pki)
        dev.floor_file.write_bytes(msgspec.json.encode(FloorFile("0.0.0", 0)))
        dev.start()
        r = Rauc(dev.bus.address)
        img_mb, bundle_mb = image.stat().st_size / MB, bundle.stat().st_size / MB
        _timed(["sha256sum", str(bundle)])  # warm the page cache for every side
        runs = []
        for _ in range(RUNS):
            sha_s = _timed(["sha256sum", str(bundle)])
            dd_s = _timed(["dd", f"if={image}", f"of={work / 'dd.img'}", "bs=4M", "conv=fsync", "status=none"])
            ours_s = _install(r, bundle)
            runs.append({"value": img_mb / ours_s, "anchor": img_mb / (sha_s + dd_s), "install_s": ours_s,
                         "dd_s": dd_s, "dd_mb_s": img_mb / dd_s, "sha256sum_s": sha_s,
                         "sha256sum_mb_s": bundle_mb / sha_s, "image_mb": img_mb, "bundle_mb": bundle_mb})
        r.close()
        return make_result(name="ota_install", metric=f"RAUC verify + install of a {img_mb:.0f} MB plain bundle into a "
                           "file slot (D-Bus, pre-install handler)", unit="MB/s", target="ratio >= 0.8",
                           anchor_name=f"sha256sum of the bundle + dd (conv=fsync) of the same {img_mb:.0f} MB image",
                           runs=runs)
    finally:
        if dev is not None:
            dev.stop()
            dev.bus.stop()
        shutil.rmtree(work, ignore_errors=True)

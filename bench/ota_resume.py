"""Bundle download with a cut at 50 % and a resume, vs one uncut download of the same file.

``endcap.updater.fetch.download`` against the test static HTTP server (Range/206) on 127.0.0.1: once
uncut (the anchor), once with the connection dropped at half the file (``cut_after``) followed by the
resume the next poll makes (``Range: bytes=<part>-``), both ending in the length + SHA-256 check.
Value = seconds of cut + resume (both attempts); ``refetched_bytes`` = bytes received beyond the file's
size over both attempts (0 when the resume is exact). Target: the cut costs at most 50 % extra time.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import time
from pathlib import Path

from bench.common import make_result
from endcap.core.errors import UpdateError
from endcap.updater.fetch import DownloadStats, Target, download
from tests.fixtures.static_http import serve_directory

MB = 1 << 20
SIZE_MB = 100
RUNS = 3


def run() -> dict:
    work = Path(tempfile.mkdtemp(prefix="ota-resume-bench-", dir=os.environ.get("ENDCAP_BENCH_TMP", "/var/tmp")))
    try:
        www = work / "www"
        www.mkdir()
        h = hashlib.sha256()
        with open(www / "b.raucb", "wb") as f:
            for _ in range(SIZE_MB):
                chunk = os.urandom(MB)
                h.update(chunk)
                f.write(chunk)
        size = SIZE_MB * MB
        t = Target("bundles/b.raucb", size, {"sha256": h.hexdigest()}, {})
        runs = []
        with serve_directory(www) as srv:
            url = f"{srv.url}/b.raucb"
            download(url, t, work / "warm" / "b.raucb")  # page cache and server warm
            for i in range(RUNS):
                t0 = time.perf_counter()
                download(url, t, work / f"full{i}" / "b.raucb")
                full_s = time.perf_counter() - t0
                srv.cut_after["/b.raucb"] = size // 2
                first, second = DownloadStats(), DownloadStats()
                dest = work / f"cut{i}" / "b.raucb"
                t0 = time.perf_counter()
                try:
                    download(url, t, dest, stats=first)
                    raise RuntimeError("the cut download completed")
                except UpdateError:
                    pass
                del srv.cut_after["/b.raucb"]
                download(url, t, dest, stats=second)
                cut_s = time.perf_counter() - t0
                runs.append({"value": cut_s, "anchor": full_s, "refetched_bytes": first.fetched + second.fetched - size,
                             "cut_at": first.fetched, "resumed_from": second.resumed_from,
                             "uncut_mb_s": SIZE_MB / full_s})
                shutil.rmtree(dest.parent)
                shutil.rmtree(work / f"full{i}")
        return make_result(name="ota_resume", metric=f"download {SIZE_MB} MB cut at 50 % then resumed (both attempts)",
                           unit="s", target="ratio <= 1.5", anchor_name=f"uncut download of the same {SIZE_MB} MB",
                           runs=runs)
    finally:
        shutil.rmtree(work, ignore_errors=True)

"""The upload sweep on real files, asking a real bus: an updater peer answering ``status``, no updater at all
(the RPC times out), and the real ``maint`` service sweeping at start."""
from __future__ import annotations

import logging
import os
import time

from endcap.core.paths import Paths
from endcap.maint.sweep import MAX_AGE_S, sweep_at_start
from tests.fixtures.maint import maint_toml

A, B, C = ("bundle-" + c * 32 for c in "abc")


def seed(directory, now):
    """A cut-off upload, two old finished ones, a fresh one and a file that is not ours."""
    directory.mkdir(parents=True, exist_ok=True)
    files = {f"{A}.part": now, f"{A}.raucb": now - 3 * MAX_AGE_S, f"{B}.raucb": now - 2 * MAX_AGE_S,
             f"{C}.raucb": now - 5, "keep-me.txt": now - 10 * MAX_AGE_S}
    for name, mtime in files.items():
        (directory / name).write_bytes(b"hsqs" + name.encode())
        os.utime(directory / name, (mtime, mtime))
    return directory


def left(directory):
    return sorted(p.name for p in directory.iterdir())


def test_updater_idle_old_uploads_go(tmp_path, updater_peer, caplog):
    paths = Paths.under(tmp_path / "root")
    paths.ensure()
    updater_peer(paths, "idle")
    now = time.time()
    d = seed(tmp_path / "uploads", now)
    with caplog.at_level(logging.INFO, logger="endcap.maint.sweep"):
        removed = sweep_at_start(d, paths, now)
    assert [r.name for r in removed] == [f"{A}.part", f"{A}.raucb", f"{B}.raucb"]
    assert left(d) == [f"{C}.raucb", "keep-me.txt"]
    assert f"removed {d / f'{A}.part'} (partial upload" in caplog.text


def test_updater_installing_keeps_the_newest(tmp_path, updater_peer):
    paths = Paths.under(tmp_path / "root")
    paths.ensure()
    updater_peer(paths, "installing")
    now = time.time()
    d = seed(tmp_path / "uploads", now)
    (d / f"{C}.raucb").unlink()  # the newest left is old B: it may be the one being installed
    sweep_at_start(d, paths, now)
    assert left(d) == [f"{B}.raucb", "keep-me.txt"]


def test_no_updater_keeps_finished_uploads(tmp_path, caplog):
    paths = Paths.under(tmp_path / "root")
    paths.ensure()
    now = time.time()
    d = seed(tmp_path / "uploads", now)
    with caplog.at_level(logging.INFO, logger="endcap.maint.sweep"):
        removed = sweep_at_start(d, paths, now, timeout_ms=300)
    assert [r.name for r in removed] == [f"{A}.part"]
    assert left(d) == [f"{A}.raucb", f"{B}.raucb", f"{C}.raucb", "keep-me.txt"]
    assert "updater status unknown" in caplog.text


def test_missing_upload_dir_is_nothing_to_do(tmp_path):
    paths = Paths.under(tmp_path / "root")
    assert sweep_at_start(tmp_path / "none", paths, time.time(), timeout_ms=100) == []


def test_maint_sweeps_at_start(gateway, updater_peer):
    gateway.paths.ensure()
    updater_peer(gateway.paths, "idle")
    d = seed(gateway.paths.service_state("maint") / "uploads", time.time())
    gateway.write_config(maint_toml(services=[]))
    gateway.start("maint")
    assert left(d) == [f"{C}.raucb", "keep-me.txt"]
    log = gateway.log("maint")
    assert f"upload sweep: removed {d / f'{A}.part'} (partial upload" in log
    assert f"{B}.raucb (finished upload" in log

"""The updater service against a real ``rauc service`` (private dbus-daemon, file-backed slots, real grubenv).

The service runs in a thread through ``main(ctx)`` (harness.py); its reboot command only drops a marker
file, and the test then plays the reboot. Health comes from a real bus publisher on ``pos.health``.
The floor comes from ``floor.json`` here (``floor_source="file"``); the TPM floor is in test_tuf_floor.py.
"""
from __future__ import annotations

import shutil
import signal
import tempfile
import time
from pathlib import Path

import msgspec
import pytest

from endcap.core import messages as m
from endcap.core.paths import Paths
from endcap.updater.floor import FloorFile
from tests.fixtures.rauc import make_bundle_file, make_pki, make_signer
from tests.integration.updater.harness import HealthyPos, Running, install_until_done, reboot


@pytest.fixture
def root():
    d = Path(tempfile.mkdtemp(prefix="upd-", dir="/tmp"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


def install_and_reboot(root: Path, dev, bundle: Path, **cfg) -> str:
    upd = Running(root, dev, **cfg)
    try:
        upd.wait(lambda s: s.booted == "A")
        upd.rpc.call("install_file", m.InstallBundleRequest(str(bundle)), m.UpdateStatus)
        st = upd.wait(lambda s: s.state == "rebooting" and upd.marker.exists())
        assert st.primary == "B" and st.last_result == "installed"
    finally:
        upd.stop()
    return reboot(dev)


def test_install_reboot_healthy_commits_and_raises_floor(root, rauc_device, fleet_test_pki):
    bundle = make_bundle_file(root / "b.raucb", version="1.1.0", pki=fleet_test_pki, security_epoch=2)
    assert install_and_reboot(root, rauc_device, bundle) == "B"
    assert rauc_device.slot_label("B") == "endcap 1.1.0"
    pos = HealthyPos(Paths.under(root))
    upd = Running(root, rauc_device, confirm_timeout_s=30)
    try:
        st = upd.wait(lambda s: s.last_result == "committed")
        assert st.booted == "B" and st.primary == "B" and st.version == "1.1.0" and st.state == "idle"
        assert [h.outcome for h in st.history] == ["installed", "committed"]
        assert {s.bootname: s.boot_status for s in st.slots}["B"] == "good"
    finally:
        upd.stop()
        pos.close()
    floor = msgspec.json.decode(rauc_device.floor_file.read_bytes(), type=FloorFile)
    assert floor == FloorFile("1.1.0", 2)
    assert rauc_device.read_env()["B_OK"] == "1" and rauc_device.read_env()["B_TRY"] == "0"
    assert reboot(rauc_device) == "B"  # committed: stays on B


def test_unhealthy_after_boot_marks_bad_and_returns_to_old_slot(root, rauc_device, fleet_test_pki):
    bundle = make_bundle_file(root / "b.raucb", version="1.1.0", pki=fleet_test_pki, security_epoch=1)
    assert install_and_reboot(root, rauc_device, bundle) == "B"
    pos = HealthyPos(Paths.under(root), ok=False)
    upd = Running(root, rauc_device, confirm_timeout_s=1.5)
    try:
        st = upd.wait(lambda s: s.last_result == "rolled-back" and upd.marker.exists())
        assert "pos: POS database unreachable" in (st.rollback_reason or "")
    finally:
        upd.stop()
        pos.close()
    assert rauc_device.read_env()["B_OK"] == "0"
    assert reboot(rauc_device) == "A"
    upd = Running(root, rauc_device)
    try:
        st = upd.wait(lambda s: s.booted == "A" and s.state == "idle")
        assert st.last_result == "rolled-back" and "POS database unreachable" in st.rollback_reason
        assert [h.outcome for h in st.history] == ["installed", "rolled-back"]
        # back on A, the updater clears the try flag GRUB set: the next reboot must not boot the bad B
        assert upd.wait(lambda s: {x.bootname: x.boot_status for x in s.slots}.get("A") == "good")
    finally:
        upd.stop()
    assert rauc_device.read_env()["A_TRY"] == "0"
    assert reboot(rauc_device) == "A"
    assert msgspec.json.decode(rauc_device.floor_file.read_bytes(), type=FloorFile).epoch == 0


def _refused(root: Path, dev, bundle: Path, needle: str, **cfg) -> None:
    upd = Running(root, dev, **cfg)
    try:
        upd.wait(lambda s: s.booted == "A")
        st = install_until_done(upd, bundle)
        assert st.primary == "A" and st.state == "failed" and st.history[-1].outcome == "refused"
        assert needle in st.history[-1].reason and needle in st.message, st
    finally:
        upd.stop()
    assert dev.read_env()["ORDER"] == "A B" and dev.read_env()["B_OK"] == "1"  # nothing was touched
    assert reboot(dev) == "A"


def test_refuses_older_and_same_version(root, rauc_device, fleet_test_pki):
    old = make_bundle_file(root / "old.raucb", version="0.9.0", pki=fleet_test_pki)
    _refused(root, rauc_device, old, "older than the running version", factory_version="1.0.0")
    same = make_bundle_file(root / "same.raucb", version="1.0.0", pki=fleet_test_pki)
    _refused(root, rauc_device, same, "the same as the running version", factory_version="1.0.0")


def test_refuses_foreign_ca(root, rauc_device, fleet_test_pki):
    foreign = make_pki(root / "foreign-pki")
    b = make_bundle_file(root / "f.raucb", version="1.1.0", pki=foreign)
    _refused(root, rauc_device, b, "[signature]")


def test_refuses_signer_without_email_protection(root, rauc_device, fleet_test_pki):
    cert, key = make_signer(fleet_test_pki, f"noeku-{time.monotonic_ns()}", email_protection=False)
    b = make_bundle_file(root / "n.raucb", version="1.1.0", pki=fleet_test_pki, cert=cert, key=key)
    _refused(root, rauc_device, b, "[signature]")


def test_refuses_wrong_compatible(root, rauc_device, fleet_test_pki):
    b = make_bundle_file(root / "c.raucb", version="1.1.0", pki=fleet_test_pki, compatible="other-board")
    _refused(root, rauc_device, b, "[compatible] bundle is for 'other-board'")


def test_refuses_tampered_payload(root, rauc_device, fleet_test_pki):
    b = make_bundle_file(root / "t.raucb", version="1.1.0", pki=fleet_test_pki)
    data = bytearray(b.read_bytes())
    data[len(data) // 3] ^= 0xFF
    b.write_bytes(bytes(data))
    _refused(root, rauc_device, b, "[signature]")


def test_preinstall_handler_refuses_downgrade_through_rauc(root, rauc_device, fleet_test_pki):
    """Even a caller that bypasses the agent (``rauc install``) meets the floor in RAUC's handler."""
    import subprocess

    rauc_device.floor_file.write_bytes(msgspec.json.encode(FloorFile("1.2.0", 3)))
    for version, epoch in (("1.1.0", 3), ("1.3.0", 2)):
        b = make_bundle_file(root / f"{version}.raucb", version=version, pki=fleet_test_pki, security_epoch=epoch)
        r = subprocess.run(["rauc", "install", str(b)], env=rauc_device.env, capture_output=True, text=True, timeout=60)
        assert r.returncode != 0 and "Pre-install handler" in r.stdout + r.stderr
        assert rauc_device.read_env()["ORDER"] == "A B"
    ok = make_bundle_file(root / "ok.raucb", version="1.3.0", pki=fleet_test_pki, security_epoch=3)
    r = subprocess.run(["rauc", "install", str(ok)], env=rauc_device.env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert rauc_device.primary() == "B"


def test_rauc_killed_mid_install_leaves_old_slot_and_next_attempt_works(root, rauc_device, fleet_test_pki):
    big = root / "big.ext4"
    from tests.fixtures.rauc import make_rootfs_image

    make_rootfs_image(big, "endcap 1.1.0", size=192 << 20)
    b = make_bundle_file(root / "b.raucb", version="1.1.0", pki=fleet_test_pki, image=big)
    upd = Running(root, rauc_device)
    try:
        upd.wait(lambda s: s.booted == "A")
        upd.rpc.call("install_file", m.InstallBundleRequest(str(b)), m.UpdateStatus)
        upd.wait(lambda s: s.state == "installing", timeout_s=60)
        rauc_device.stop(signal.SIGKILL)
        st = upd.wait(lambda s: s.state == "failed", timeout_s=60)
        assert st.history[-1].outcome == "failed"
    finally:
        upd.stop()
    assert rauc_device.primary() == "A"
    assert reboot(rauc_device) == "A"
    assert install_and_reboot(root, rauc_device, b) == "B"

"""The updater's robustness against real RAUC (private dbus-daemon): local bundles are accepted at once and
verified in the worker, a busy updater refuses, uploads are cleaned up, nothing unverified is parsed, and a
reboot that never happened is asked for again instead of being read as a rollback (review items 1, 3, 4, 7)."""
from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import msgspec
import pytest

from endcap.core import messages as m
from endcap.core.errors import RemoteError
from endcap.core.paths import Paths
from endcap.updater.floor import FloorFile
from endcap.updater.rauc import Rauc, _err
from tests.fixtures.rauc import make_bundle_file, make_pki, make_rootfs_image
from tests.integration.updater.harness import HealthyPos, Running, install_until_done, reboot


@pytest.fixture
def root():
    d = Path(tempfile.mkdtemp(prefix="updr-", dir="/tmp"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


def test_install_file_returns_at_once_refuses_while_busy_and_removes_the_upload(root, rauc_device, fleet_test_pki):
    uploads = root / "uploads"
    uploads.mkdir()
    big = root / "big.ext4"
    make_rootfs_image(big, "endcap 1.1.0", size=48 << 20)
    b = make_bundle_file(uploads / "bundle-1.raucb", version="1.1.0", pki=fleet_test_pki, image=big,
                         security_epoch=2)
    other = make_bundle_file(uploads / "bundle-2.raucb", version="1.2.0", pki=fleet_test_pki)
    upd = Running(root, rauc_device, upload_dir=str(uploads))
    try:
        upd.wait(lambda s: s.booted == "A")
        st = upd.rpc.call("install_file", m.InstallBundleRequest(str(b)), m.UpdateStatus)
        assert st.state == "verifying"
        with pytest.raises(RemoteError) as e:  # verifying, installing or rebooting: never idle again before
            upd.rpc.call("install_file", m.InstallBundleRequest(str(other)), m.UpdateStatus)
        assert e.value.code == "busy"
        st = upd.wait(lambda s: s.state == "rebooting" and upd.marker.exists(), timeout_s=120)
        assert st.last_result == "installed" and st.primary == "B"
        assert not b.exists() and other.exists()  # the installed upload removed; the refused request's kept
        r = Rauc(rauc_device.bus.address)
        try:
            assert r.slot_builds()["B"] == ("1.1.0", "test security-epoch=2")  # where Pending's epoch comes from
        finally:
            r.close()
    finally:
        upd.stop()


def test_refused_upload_removed_only_inside_upload_dir(root, rauc_device, fleet_test_pki):
    uploads = root / "uploads"
    uploads.mkdir()
    foreign = make_pki(root / "foreign-pki")
    inside = make_bundle_file(uploads / "f.raucb", version="1.1.0", pki=foreign)
    outside = make_bundle_file(root / "f.raucb", version="1.1.0", pki=foreign)
    upd = Running(root, rauc_device, upload_dir=str(uploads))
    try:
        upd.wait(lambda s: s.booted == "A")
        st = install_until_done(upd, inside)
        assert st.state == "failed" and "[signature]" in st.message and not inside.exists()
        st = install_until_done(upd, outside)
        assert st.state == "failed" and outside.exists()
    finally:
        upd.stop()


def _squashfs(root: Path, name: str, manifest: bytes) -> Path:
    d = root / f"{name}-content"
    d.mkdir()
    (d / "manifest.raucm").write_bytes(manifest)
    out = root / f"{name}.raucb"
    subprocess.run(["mksquashfs", str(d), str(out), "-quiet", "-noappend"], check=True, capture_output=True,
                   timeout=60)
    return out


@pytest.mark.parametrize("manifest", [
    b"[update]\ncompatible=x\nversion=9.9.9\nbuild=\xff\xfe security-epoch=1\n",  # not UTF-8
    "[update]\ncompatible=x\nversion=9.9.9\nbuild=security-epoch=\u00b2\n".encode(),  # isdigit() but not int()
])
def test_unsigned_upload_is_refused_by_rauc_and_never_parsed(root, rauc_device, manifest):
    """Review item 3: the old handler parsed the unsigned file first and died on these."""
    junk = _squashfs(root, "junk", manifest)
    upd = Running(root, rauc_device)
    try:
        upd.wait(lambda s: s.booted == "A")
        st = install_until_done(upd, junk)
        assert st.state == "failed" and st.history[-1].outcome == "refused" and "[signature]" in st.message
        assert upd.status().state == "failed"  # still answering
    finally:
        upd.stop()


def test_failed_reboot_command_then_restart_is_not_a_rollback(root, rauc_device, fleet_test_pki):
    """Review item 1: the reboot fails; an updater restart in the same boot must not record a rollback."""
    b = make_bundle_file(root / "b.raucb", version="1.1.0", pki=fleet_test_pki, security_epoch=1)
    upd = Running(root, rauc_device, reboot_command=("sh", "-c", "echo no reboot for you >&2; exit 3"))
    try:
        upd.wait(lambda s: s.booted == "A")
        install_until_done(upd, b)
        st = upd.wait(lambda s: "reboot failed" in s.message)
        assert "exited 3" in st.message and "no reboot for you" in st.message and st.state == "rebooting"
    finally:
        upd.stop()
    upd = Running(root, rauc_device)  # same boot id: the reboot never happened
    try:
        st = upd.wait(lambda s: upd.marker.exists())
        assert st.state == "rebooting" and st.last_result == "installed"
        assert [h.outcome for h in st.history] == ["installed"]
    finally:
        upd.stop()
    assert reboot(rauc_device) == "B"
    pos = HealthyPos(Paths.under(root))
    upd = Running(root, rauc_device, confirm_timeout_s=30)
    try:
        st = upd.wait(lambda s: s.last_result == "committed")
        assert st.booted == "B" and [h.outcome for h in st.history] == ["installed", "committed"]
    finally:
        upd.stop()
        pos.close()
    assert msgspec.json.decode(rauc_device.floor_file.read_bytes(), type=FloorFile) == FloorFile("1.1.0", 1)


def test_missing_reboot_command_does_not_kill_the_loop(root, rauc_device, fleet_test_pki):
    b = make_bundle_file(root / "b.raucb", version="1.1.0", pki=fleet_test_pki)
    upd = Running(root, rauc_device, reboot_command=(str(root / "no-such-reboot"),))
    try:
        upd.wait(lambda s: s.booted == "A")
        install_until_done(upd, b)
        st = upd.wait(lambda s: "reboot failed" in s.message)
        assert "no-such-reboot" in st.message
    finally:
        upd.stop()  # asserts the loop did not die


def test_rauc_timeouts_are_transient_not_refusals():
    """Review item 4: GLib's timeout must not become a permanent [signature] refusal."""
    e = _err("Info", Exception("g-io-error-quark: Timeout was reached (24)"))
    assert e.code == "rauc_timeout"
    assert _err("Info", Exception("GDBus.Error:org.freedesktop.DBus.Error.ServiceUnknown: x")).code == "rauc_unavailable"
    assert _err("Info", Exception("signature verification failed: unable to get local issuer")).code == "rauc"

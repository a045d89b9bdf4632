"""The updater polling a real TUF fleet repository (NOC FleetRepo + static HTTP) into real RAUC.

Rollout (canary installs, reboots, health passes, committed; fleet waits for promote), download cut and
resume, server-side truncation/tampering refused before RAUC, replayed and expired metadata refused,
and the updater SIGKILLed mid-install (a real process) leaving the old slot primary.
"""
from __future__ import annotations

import datetime as dt
import shutil
import tempfile
from pathlib import Path

import msgspec
import pytest

from endcap.core import messages as m
from endcap.core.paths import Paths
from endcap.updater.floor import FloorFile
from tests.fixtures.rauc import COMPATIBLE, make_bundle_file, make_device, make_rootfs_image
from tests.integration.updater.fleet import make_fleet
from tests.integration.updater.harness import HealthyPos, Running, UpdaterProcess, reboot


@pytest.fixture
def root():
    d = Path(tempfile.mkdtemp(prefix="updt-", dir="/tmp"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def fleet(tmp_path, static_http, fleet_test_pki):
    return make_fleet(tmp_path / "noc", static_http, fleet_test_pki)


def up_to_date(s: m.UpdateStatus) -> bool:
    return s.state == "idle" and s.message == "up to date"


def test_canary_commits_fleet_waits_for_promote(root, tmp_path, rauc_device, fleet, fleet_test_pki):
    fleet.publish("1.1.0", epoch=1, ring="canary")
    cfg = fleet.device_config("canary", confirm_timeout_s=30)
    upd = Running(root, rauc_device, **cfg)  # polls at start
    try:
        st = upd.wait(lambda s: s.state == "rebooting" and upd.marker.exists())
        assert st.offered == "1.1.0" and st.primary == "B" and st.last_result == "installed"
    finally:
        upd.stop()
    assert reboot(rauc_device) == "B" and rauc_device.slot_label("B") == "endcap 1.1.0"
    pos = HealthyPos(Paths.under(root))
    upd = Running(root, rauc_device, **cfg)
    try:
        st = upd.wait(lambda s: s.last_result == "committed")
        assert st.version == "1.1.0" and st.booted == "B" and [h.outcome for h in st.history] == ["installed",
                                                                                                   "committed"]
        upd.wait(up_to_date)  # the poll after commit: 1.1.0 is running now
    finally:
        upd.stop()
        pos.close()
    assert msgspec.json.decode(rauc_device.floor_file.read_bytes(), type=FloorFile) == FloorFile("1.1.0", 1)

    dev2 = make_device(tmp_path / "fleet-device", fleet_test_pki)
    root2 = root / "fleet"
    try:
        dev2.start()
        upd = Running(root2, dev2, **fleet.device_config("fleet"))
        try:
            upd.wait(up_to_date)
            fleet.repo.promote("1.1.0", COMPATIBLE, to="pilot")
            assert upd.check().state == "checking"
            st = upd.wait(up_to_date)
            assert st.offered is None and st.primary == "A"
            fleet.repo.promote("1.1.0", COMPATIBLE, to="fleet")
            upd.check()
            st = upd.wait(lambda s: s.state == "rebooting")
            assert st.offered == "1.1.0" and st.primary == "B"
        finally:
            upd.stop()
    finally:
        dev2.stop()
        dev2.bus.stop()


def test_cut_download_resumes_where_it_stopped(root, rauc_device, fleet):
    fleet.publish("1.1.0", ring="canary")
    served, url_path = fleet.served_bundle("1.1.0")
    size = served.stat().st_size
    fleet.server.cut_after[url_path] = size // 2
    upd = Running(root, rauc_device, **fleet.device_config("canary"))
    try:
        st = upd.wait(lambda s: s.state == "failed")
        assert "download cut at" in st.message and st.primary == "A"
        part = Path(upd.paths.service_state("updater")) / "downloads" / f"{url_path.rsplit('/', 1)[1].split('.', 1)[1]}.part"
        assert part.stat().st_size == size // 2
        del fleet.server.cut_after[url_path]
        upd.check()
        st = upd.wait(lambda s: s.state == "rebooting")
        assert st.primary == "B"
    finally:
        upd.stop()
    ranges = [r for p, r in fleet.server.requests if p == url_path]
    assert ranges == [None, f"bytes={size // 2}-"]  # the second request fetched only the missing half
    assert reboot(rauc_device) == "B" and rauc_device.slot_label("B") == "endcap 1.1.0"


def test_truncated_or_altered_on_server_refused_then_fixed(root, rauc_device, fleet):
    fleet.publish("1.1.0", ring="canary")
    served, _ = fleet.served_bundle("1.1.0")
    good = served.read_bytes()
    bad = bytearray(good)
    bad[len(bad) // 2] ^= 0xFF
    served.write_bytes(bytes(bad))
    upd = Running(root, rauc_device, **fleet.device_config("canary"))
    try:
        st = upd.wait(lambda s: s.state == "failed")
        assert st.last_result == "refused" and "[tampered]" in st.message, st.message
        served.write_bytes(good[: len(good) // 2])
        upd.check()
        st = upd.wait(lambda s: s.state == "failed" and "[truncated]" in s.message)
        assert st.last_result == "refused" and st.primary == "A"
        assert [(h.outcome, h.reason[:11]) for h in st.history] == [("refused", "[tampered] "), ("refused", "[truncated]")]
        assert not list((Path(upd.paths.service_state("updater")) / "downloads").glob("*.raucb*"))
        served.write_bytes(good)  # the store's copy is fixed: the same version installs now
        upd.check()
        st = upd.wait(lambda s: s.state == "rebooting")
        assert st.primary == "B"
    finally:
        upd.stop()
    assert rauc_device.read_env()["ORDER"].startswith("B")


def test_replayed_and_expired_metadata_refused(root, rauc_device, fleet):
    meta = fleet.repo.repo_dir / "metadata"
    old_ts = (meta / "timestamp.json").read_bytes()
    fleet.publish("1.1.0", ring="canary")  # the device follows fleet: nothing for it, but newer metadata
    upd = Running(root, rauc_device, **fleet.device_config("fleet"))
    try:
        upd.wait(up_to_date)
        new_ts = (meta / "timestamp.json").read_bytes()
        (meta / "timestamp.json").write_bytes(old_ts)  # a mirror replays an older, validly signed timestamp
        upd.check()
        st = upd.wait(lambda s: s.state == "failed")
        assert st.last_result == "refused" and st.message.startswith("[rollback]"), st.message
        (meta / "timestamp.json").write_bytes(new_ts)
        upd.check()
        upd.wait(up_to_date)
        past = dt.datetime.now(dt.timezone.utc).replace(microsecond=0) - dt.timedelta(hours=1)
        fleet.repo.refresh_timestamp(expires=past)  # frozen: the NOC's timestamp refresh stopped
        upd.check()
        st = upd.wait(lambda s: s.state == "failed")
        assert st.message.startswith("[expired]"), st.message
        fleet.repo.refresh_timestamp()
        upd.check()
        st = upd.wait(up_to_date)
        assert st.primary == "A" and st.booted == "A"
    finally:
        upd.stop()


def test_updater_killed_mid_install_old_slot_stays_and_retry_works(root, rauc_device, fleet_test_pki):
    big = root / "big.ext4"
    make_rootfs_image(big, "endcap 1.1.0", size=192 << 20)
    b = make_bundle_file(root / "b.raucb", version="1.1.0", pki=fleet_test_pki, image=big)
    upd = UpdaterProcess(root, rauc_device)
    upd.rpc.call("install_file", m.InstallBundleRequest(str(b)), m.UpdateStatus)
    upd.wait(lambda s: s.state == "installing", timeout_s=60)
    upd.kill()  # SIGKILL: no cleanup; RAUC carries on with the install on its own
    state = msgspec.json.decode((upd.paths.service_state("updater") / "state.json").read_bytes())
    assert state["phase"] == "installing" and state["target"] == "1.1.0"  # killed mid-install, nothing recorded
    upd = UpdaterProcess(root, rauc_device)  # waits for RAUC to finish, then drops the unrecorded install
    try:
        st = upd.wait(lambda s: s.state == "idle")
        assert st.primary == "A" and st.history[-1].outcome == "failed"
        assert "interrupted" in st.history[-1].reason and st.history[-1].version == "1.1.0"
    finally:
        upd.stop()
    assert rauc_device.primary() == "A" and reboot(rauc_device) == "A"
    upd = UpdaterProcess(root, rauc_device)
    try:
        upd.rpc.call("install_file", m.InstallBundleRequest(str(b)), m.UpdateStatus)
        st = upd.wait(lambda s: s.state == "rebooting", timeout_s=120)
        assert st.primary == "B"
    finally:
        upd.stop()
    assert reboot(rauc_device) == "B" and rauc_device.slot_label("B") == "endcap 1.1.0"


def test_rolled_back_version_is_not_installed_again(root, rauc_device, fleet):
    fleet.publish("1.1.0", ring="canary")
    cfg = fleet.device_config("canary", confirm_timeout_s=1.0)
    upd = Running(root, rauc_device, **cfg)
    try:
        upd.wait(lambda s: s.state == "rebooting" and upd.marker.exists())
    finally:
        upd.stop()
    upd.marker.unlink()
    assert reboot(rauc_device) == "B"
    pos = HealthyPos(Paths.under(root), ok=False)
    upd = Running(root, rauc_device, **cfg)
    try:
        upd.wait(lambda s: s.last_result == "rolled-back" and upd.marker.exists())
    finally:
        upd.stop()
        pos.close()
    assert reboot(rauc_device) == "A"
    upd = Running(root, rauc_device, **cfg)  # polls at start: the ring still offers 1.1.0
    try:
        st = upd.wait(lambda s: s.state == "idle" and "waiting for a newer release" in s.message)
        assert "1.1.0, which was rolled-back here" in st.message and st.primary == "A"
        fleet.publish("1.1.1", ring="canary")  # the fix-forward release installs
        upd.check()
        st = upd.wait(lambda s: s.state == "rebooting")
        assert st.primary == "B" and st.history[-1].version == "1.1.1"
    finally:
        upd.stop()

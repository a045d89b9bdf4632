"""The TPM-anchored firmware floor: trust's NV counter (real swtpm), its RPCs, and the updater enforcing,
syncing and raising it around a real RAUC install from the TUF repository."""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import msgspec
import pytest

from endcap.core import messages as m
from endcap.core.errors import IntegrityError, RemoteError
from endcap.core.paths import Paths
from endcap.trust import firmware_floor as fwf
from endcap.trust.tpm import Anchor, Tpm
from endcap.updater.floor import FloorFile
from tests.fixtures.rauc import make_bundle_file
from tests.integration.updater.fleet import make_fleet
from tests.integration.updater.harness import HealthyPos, Running, TrustThread, install_until_done, reboot


@pytest.fixture
def root():
    d = Path(tempfile.mkdtemp(prefix="updf-", dir="/tmp"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


def floor_file(dev) -> FloorFile:
    return msgspec.json.decode(dev.floor_file.read_bytes(), type=FloorFile)


def test_firmware_counter_is_its_own_nv_counter(tpm_tcti, enrolled):
    with fwf.open_floor(tpm_tcti) as tpm:
        assert fwf.read(tpm) == 0  # enrolled on first use (owner auth still empty)
        assert fwf.raise_to(tpm, 3) == 3
        assert fwf.raise_to(tpm, 1) == 3  # never lowered
        with pytest.raises(IntegrityError, match="negative"):
            fwf.raise_to(tpm, -1)
    with Tpm(tpm_tcti) as model:  # the model epoch counter (trust's default indices) did not move
        assert model.epoch() == 0 and model.counter_index != fwf.FIRMWARE_COUNTER_INDEX
    with fwf.open_floor(tpm_tcti) as tpm:
        assert fwf.read(tpm) == 3


def test_foreign_index_at_the_base_is_refused(tpm_tcti):
    with Tpm(tpm_tcti, anchor_index=fwf.FIRMWARE_BASE_INDEX, counter_index=fwf.FIRMWARE_COUNTER_INDEX) as tpm:
        tpm.define_anchor(Anchor(b"\x11" * 32, tpm.define_counter()))  # someone else's locked index
    with fwf.open_floor(tpm_tcti) as tpm, pytest.raises(IntegrityError, match="not a firmware-floor base"):
        fwf.read(tpm)


def test_updater_enforces_syncs_and_raises_the_tpm_floor(root, tmp_path, tpm_tcti, rauc_device, static_http,
                                                         fleet_test_pki):
    trust = TrustThread(root, tpm_tcti, rauc_device.floor_file)
    try:
        assert trust.floor() == m.FirmwareFloor(epoch=0, tpm="ok")
        rauc_device.floor_file.write_bytes(msgspec.json.encode(FloorFile("0.0.0", 2)))  # as if 2 was committed
        assert trust.raise_floor(2).epoch == 2
        rauc_device.floor_file.write_bytes(msgspec.json.encode(FloorFile("0.0.0", 0)))
        low = make_bundle_file(root / "low.raucb", version="1.0.5", pki=fleet_test_pki, security_epoch=1)
        upd = Running(root, rauc_device, floor_source="trust")
        try:
            upd.wait(lambda s: s.booted == "A")
            assert floor_file(rauc_device).epoch == 2  # the file below the TPM was corrected at start
            st = install_until_done(upd, low)
            assert st.state == "failed" and "[epoch] bundle security epoch 1 is below this device's floor 2" in st.message
        finally:
            upd.stop()

        fleet = make_fleet(tmp_path / "noc", static_http, fleet_test_pki)
        fleet.publish("1.1.0", epoch=3, ring="canary")
        cfg = fleet.device_config("canary", floor_source="trust", confirm_timeout_s=30)
        upd = Running(root, rauc_device, **cfg)
        try:
            upd.wait(lambda s: s.state == "rebooting" and upd.marker.exists())
        finally:
            upd.stop()
        assert trust.floor().epoch == 2  # not raised before the new slot proved healthy
        assert reboot(rauc_device) == "B"
        pos = HealthyPos(Paths.under(root))
        upd = Running(root, rauc_device, **cfg)
        try:
            upd.wait(lambda s: s.last_result == "committed")
        finally:
            upd.stop()
            pos.close()
        assert trust.floor().epoch == 3 and floor_file(rauc_device) == FloorFile("1.1.0", 3)

        rauc_device.floor_file.write_bytes(msgspec.json.encode(FloorFile("1.1.0", 5)))  # file above the TPM
        b = make_bundle_file(root / "b4.raucb", version="1.2.0", pki=fleet_test_pki, security_epoch=4)
        upd = Running(root, rauc_device, floor_source="trust")
        try:
            upd.wait(lambda s: s.booted == "B")
            st = install_until_done(upd, b)
            assert st.state == "failed" and "below this device's floor 5" in st.message
        finally:
            upd.stop()
    finally:
        trust.stop()
    # trust is gone: fail closed, nothing installed, the reason names the floor
    upd = Running(root, rauc_device, floor_source="trust", trust_timeout_ms=500)
    try:
        upd.wait(lambda s: s.booted == "B")
        ok = make_bundle_file(root / "b6.raucb", version="1.3.0", pki=fleet_test_pki, security_epoch=6)
        st = install_until_done(upd, ok)
        assert st.state == "failed" and "[floor] no install without the floor" in st.message
        assert st.history[-1].outcome == "failed"  # transient: not refused, so tried again later
        assert upd.status().primary == "B"
    finally:
        upd.stop()


def test_raise_is_capped_by_the_committed_floor_file(root, tpm_tcti, rauc_device):
    """Review item 12: a bus client can raise the TPM floor at most to what the updater committed."""
    trust = TrustThread(root, tpm_tcti, rauc_device.floor_file)
    try:
        rauc_device.floor_file.unlink(missing_ok=True)
        with pytest.raises(RemoteError) as e:
            trust.raise_floor(1)
        assert e.value.code == "epoch_cap" and "not readable" in str(e.value)
        rauc_device.floor_file.write_bytes(msgspec.json.encode(FloorFile("1.0.0", 2)))
        with pytest.raises(RemoteError) as e:
            trust.raise_floor(1024)
        assert e.value.code == "epoch_cap" and "above the committed epoch 2" in str(e.value)
        assert trust.floor().epoch == 0
        assert trust.raise_floor(2).epoch == 2
        assert trust.raise_floor(1).epoch == 2  # a no-op below the floor needs no file
    finally:
        trust.stop()

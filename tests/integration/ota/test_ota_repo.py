"""The fleet TUF repository served by a plain static HTTP server, read by python-tuf's real ngclient."""
from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import pytest
from tuf.api import exceptions as tuf_exc
from tuf.ngclient import Updater

from endcap_ota.errors import BundleRefused, RepoError
from endcap_ota.repo import FleetRepo
from endcap_ota.verify import verify_bundle
from tests.fixtures.ota import COMPATIBLE


class Device:
    """A device's view: trusted 1.root.json from the image, its ring, its compatible."""

    def __init__(self, tmp: Path, name: str, repo_dir: Path, url: str, ring: str) -> None:
        self.md_dir, self.tgt_dir = tmp / name / "metadata", tmp / name / "targets"
        self.md_dir.mkdir(parents=True)
        self.tgt_dir.mkdir(parents=True)
        shutil.copy(repo_dir / "metadata" / "1.root.json", self.md_dir / "root.json")
        self.url, self.ring = url, ring

    def updater(self) -> Updater:
        return Updater(str(self.md_dir), f"{self.url}/metadata/", str(self.tgt_dir), f"{self.url}/targets/",
                       bootstrap=None)

    def pointer(self) -> dict | None:
        up = self.updater()
        up.refresh()
        info = up.get_targetinfo(f"rings/{self.ring}/{COMPATIBLE}.json")
        if info is None:
            return None
        return json.loads(Path(up.download_target(info)).read_bytes())

    def fetch_bundle(self, pointer: dict) -> tuple[Path, dict]:
        up = self.updater()
        up.refresh()
        info = up.get_targetinfo(pointer["target"])
        assert info is not None
        return Path(up.download_target(info)), info.custom


@pytest.fixture
def served(fleet_repo, static_http, tmp_path):
    srv = static_http(fleet_repo.repo_dir)
    return fleet_repo, srv


def test_publish_promote_halt_as_devices_see_it(served, tmp_path, make_bundle, fleet_pki):
    repo, srv = served
    canary = Device(tmp_path, "canary-dev", repo.repo_dir, srv.url, "canary")
    fleet = Device(tmp_path, "fleet-dev", repo.repo_dir, srv.url, "fleet")
    assert canary.pointer() is None and fleet.pointer() is None

    b1 = make_bundle("1.0.0", security_epoch=1)
    assert repo.publish(b1, "canary", keyring=fleet_pki.keyring) == "1.0.0"
    ptr = canary.pointer()
    assert ptr == {"version": "1.0.0", "target": f"bundles/{COMPATIBLE}/{COMPATIBLE}-1.0.0.raucb", "security_epoch": 1}
    assert fleet.pointer() is None
    local, custom = canary.fetch_bundle(ptr)
    assert custom == {"version": "1.0.0", "compatible": COMPATIBLE, "security_epoch": 1}
    assert local.read_bytes() == b1.read_bytes()
    assert verify_bundle(local, fleet_pki.keyring, compatible=COMPATIBLE).version == "1.0.0"

    with pytest.raises(RepoError) as ei:
        repo.promote("1.0.0", COMPATIBLE, "fleet")  # skipping pilot
    assert ei.value.code == "order"
    repo.promote("1.0.0", COMPATIBLE, "pilot")
    assert fleet.pointer() is None
    repo.promote("1.0.0", COMPATIBLE, "fleet")
    assert fleet.pointer()["version"] == "1.0.0"

    repo.publish(make_bundle("1.1.0"), keyring=fleet_pki.keyring)
    assert canary.pointer()["version"] == "1.1.0" and fleet.pointer()["version"] == "1.0.0"
    with pytest.raises(RepoError):  # an older version never enters a ring
        repo.publish(make_bundle("1.0.5"), keyring=fleet_pki.keyring)

    assert repo.halt("canary", COMPATIBLE) == "1.0.0"
    assert canary.pointer()["version"] == "1.0.0"
    with pytest.raises(RepoError) as ei:
        repo.promote("1.1.0", COMPATIBLE, "pilot")  # halted versions go no further
    assert ei.value.code == "order"
    assert repo.halt("canary", COMPATIBLE) is None
    assert canary.pointer() is None

    # a reopened repo (another NOC shell) sees the same state
    again = FleetRepo.open(repo.repo_dir, repo.keys_dir)
    st = again.status()
    assert st.rings["fleet"][COMPATIBLE] == "1.0.0" and st.rings["canary"][COMPATIBLE] is None
    assert not st.problems


def test_publish_refuses_bad_bundle_and_leaves_repo_untouched(served, tmp_path, make_bundle, fleet_pki):
    repo, _ = served
    before = sorted(p.name for p in (repo.repo_dir / "metadata").iterdir())
    b = make_bundle("2.0.0")
    data = bytearray(b.read_bytes())
    data[len(data) // 3] ^= 1
    b.write_bytes(bytes(data))
    with pytest.raises(BundleRefused) as ei:
        repo.publish(b, keyring=fleet_pki.keyring)
    assert ei.value.code == "tampered"
    assert sorted(p.name for p in (repo.repo_dir / "metadata").iterdir()) == before


def test_same_version_other_content_refused(served, make_bundle, fleet_pki):
    repo, _ = served
    repo.publish(make_bundle("1.0.0"), keyring=fleet_pki.keyring)
    with pytest.raises(RepoError) as ei:
        repo.publish(make_bundle("1.0.0"), "pilot", keyring=fleet_pki.keyring)
    assert ei.value.code == "exists"


def test_expired_timestamp_refused_by_client(served, tmp_path, make_bundle, fleet_pki):
    repo, srv = served
    repo.publish(make_bundle("1.0.0"), keyring=fleet_pki.keyring)
    repo.refresh_timestamp(expires=dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=1))
    assert [r.state for r in repo.status().roles if r.role == "timestamp"] == ["expired"]
    dev = Device(tmp_path, "dev", repo.repo_dir, srv.url, "canary")
    with pytest.raises(tuf_exc.ExpiredMetadataError):
        dev.pointer()
    repo.refresh_timestamp()  # the scheduled job heals it
    assert dev.pointer()["version"] == "1.0.0"


def test_freeze_attack_refused(served, tmp_path, make_bundle, fleet_pki):
    """A mirror that stops at a timestamp the device already has, after that timestamp expired."""
    repo, srv = served
    repo.publish(make_bundle("1.0.0"), keyring=fleet_pki.keyring)
    repo.refresh_timestamp(expires=dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=1))
    dev = Device(tmp_path, "dev", repo.repo_dir, srv.url, "canary")
    # the device stored this timestamp while it was valid; the frozen mirror offers nothing newer
    shutil.copy(repo.repo_dir / "metadata" / "timestamp.json", dev.md_dir / "timestamp.json")
    with pytest.raises(tuf_exc.ExpiredMetadataError):
        dev.pointer()


def test_rollback_of_whole_metadata_refused(served, tmp_path, make_bundle, fleet_pki):
    repo, srv = served
    old = tmp_path / "old-timestamp.json"
    repo.publish(make_bundle("1.0.0"), keyring=fleet_pki.keyring)
    shutil.copy(repo.repo_dir / "metadata" / "timestamp.json", old)
    repo.publish(make_bundle("1.1.0"), keyring=fleet_pki.keyring)
    dev = Device(tmp_path, "dev", repo.repo_dir, srv.url, "canary")
    assert dev.pointer()["version"] == "1.1.0"
    # the attacker replays the older, still validly signed and unexpired timestamp (-> older snapshot, 1.0.0)
    shutil.copy(old, repo.repo_dir / "metadata" / "timestamp.json")
    with pytest.raises(tuf_exc.BadVersionNumberError):
        dev.pointer()


def test_rollback_of_ring_metadata_refused(served, tmp_path, make_bundle, fleet_pki):
    repo, srv = served
    repo.publish(make_bundle("1.0.0"), keyring=fleet_pki.keyring)
    repo.publish(make_bundle("1.1.0"), keyring=fleet_pki.keyring)
    md = repo.repo_dir / "metadata"
    v = repo.md["canary"].signed.version
    # serve the previous, validly signed canary metadata (pointing at 1.0.0) under the current name
    shutil.copy(md / f"{v - 1}.canary.json", md / f"{v}.canary.json")
    dev = Device(tmp_path, "dev", repo.repo_dir, srv.url, "canary")
    with pytest.raises(tuf_exc.BadVersionNumberError):
        dev.pointer()


@pytest.mark.parametrize("role", ["root", "targets", "snapshot", "timestamp", "bundles", "canary"])
def test_key_rotation_keeps_devices_updating(served, tmp_path, make_bundle, fleet_pki, role):
    repo, srv = served
    dev = Device(tmp_path, "dev", repo.repo_dir, srv.url, "canary")
    repo.publish(make_bundle("1.0.0"), keyring=fleet_pki.keyring)
    assert dev.pointer()["version"] == "1.0.0"
    old_keys = set(p.name for p in (repo.keys_dir / role).glob("*.pem"))
    repo.rotate_key(role)
    assert not old_keys & set(p.name for p in (repo.keys_dir / role).glob("*.pem"))
    repo.publish(make_bundle("1.1.0"), keyring=fleet_pki.keyring)
    assert dev.pointer()["version"] == "1.1.0"
    assert Device(tmp_path, "new-dev", repo.repo_dir, srv.url, "canary").pointer()["version"] == "1.1.0"


def test_status_flags_near_expiry(fleet_repo):
    later = dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=20)
    st = {r.role: r.state for r in fleet_repo.status(later).roles}
    assert st["timestamp"] == "near-expiry" and st["targets"] == "ok"

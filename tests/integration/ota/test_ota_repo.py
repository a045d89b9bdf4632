"""The fleet TUF repository served by a plain static HTTP server, read by python-tuf's real ngclient."""
from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import pytest
from tuf.api import exceptions as tuf_exc
from tuf.api.metadata import Metadata
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
    assert repo.refresh().resigned == []  # the scheduled job heals it (nothing else due)
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


# ---- expiry upkeep: resign and the scheduled refresh ------------------------------------------------------------
# The NOC's clock is FleetRepo's ``clock`` seam; the device (ngclient) uses the real clock. Placing the NOC's
# "now" days in the past makes the 30-day roles expire (or come close) in real time, without sleeping.

class NocClock:
    def __init__(self, at: dt.datetime) -> None:
        self.at = at

    def __call__(self) -> dt.datetime:
        return self.at


def _real_now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _aged_repo(tmp_path, static_http, make_bundle, fleet_pki, age_days: float):
    """A repository with the production lifetimes, created and published to canary ``age_days`` ago."""
    clock = NocClock(_real_now() - dt.timedelta(days=age_days))
    repo = FleetRepo.create(tmp_path / "repo", tmp_path / "keys", clock=clock)  # default expiries: 30-day roles
    bundle = make_bundle("1.0.0")
    repo.publish(bundle, keyring=fleet_pki.keyring)
    clock.at = _real_now()
    return repo, static_http(repo.repo_dir), bundle


FAMILY = ["targets", "bundles", "canary", "pilot", "fleet"]


def test_refresh_resigns_expired_30_day_roles_and_devices_update_again(tmp_path, static_http, make_bundle,
                                                                       fleet_pki):
    repo, srv, b1 = _aged_repo(tmp_path, static_http, make_bundle, fleet_pki, age_days=31)
    dev = Device(tmp_path, "dev", repo.repo_dir, srv.url, "canary")
    repo.refresh_timestamp()  # what the scheduled job used to do: timestamp (+ snapshot) only
    with pytest.raises(tuf_exc.ExpiredMetadataError):
        dev.pointer()  # the 30-day roles ran out: the fleet is stuck
    assert {r.role for r in repo.status().problems} == set(FAMILY)

    done = repo.refresh()
    assert done.resigned == ["targets", "snapshot", "bundles", "canary", "pilot", "fleet"] and done.needs_keys == []
    assert not repo.status().problems
    ptr = dev.pointer()
    assert ptr["version"] == "1.0.0"
    local, _ = dev.fetch_bundle(ptr)
    assert local.read_bytes() == b1.read_bytes()
    repo.publish(make_bundle("1.1.0"), keyring=fleet_pki.keyring)
    assert dev.pointer()["version"] == "1.1.0"

    again = repo.refresh()  # nothing due any more: only a new timestamp
    assert again.resigned == [] and again.timestamp_version == repo.md["timestamp"].signed.version
    assert dev.pointer()["version"] == "1.1.0"


def test_device_keeps_updating_past_the_old_expiry(tmp_path, static_http, make_bundle, fleet_pki):
    """A device that updated while the 30-day roles had a day left trusts re-signed ones that outlive them."""
    repo, srv, b1 = _aged_repo(tmp_path, static_http, make_bundle, fleet_pki, age_days=29)
    repo.refresh_timestamp()
    dev = Device(tmp_path, "dev", repo.repo_dir, srv.url, "canary")
    dev.fetch_bundle(dev.pointer())  # the device has loaded targets, canary and bundles
    old = {r: repo.md[r].signed.expires for r in FAMILY}
    cached = Metadata.from_file(str(dev.md_dir / "canary.json")).signed
    assert cached.expires == old["canary"] < _real_now() + dt.timedelta(days=1, minutes=1)
    day_after = _real_now() + dt.timedelta(days=2)
    assert {r.role for r in repo.status(day_after).roles if r.state == "expired"} >= set(FAMILY)

    assert repo.refresh().resigned == ["targets", "snapshot", "bundles", "canary", "pilot", "fleet"]
    local, _ = dev.fetch_bundle(dev.pointer())
    assert local.read_bytes() == b1.read_bytes()
    for role in ("targets", "bundles", "canary"):  # what the device now trusts (ngclient wrote it after verifying) outlives the old expiry
        trusted = Metadata.from_file(str(dev.md_dir / f"{role}.json")).signed
        assert trusted.expires >= old[role] + dt.timedelta(days=28)
        assert trusted.version == repo.md[role].signed.version
    assert not [r for r in repo.status(day_after).roles if r.role in FAMILY and r.state != "ok"]
    repo.publish(make_bundle("1.1.0"), keyring=fleet_pki.keyring)
    assert dev.pointer()["version"] == "1.1.0"


def test_refresh_with_only_online_keys_reports_offline_roles(tmp_path, static_http, make_bundle, fleet_pki):
    repo, srv, b1 = _aged_repo(tmp_path, static_http, make_bundle, fleet_pki, age_days=25)  # 5 of 30 days left
    online = tmp_path / "online-keys"
    online.mkdir()
    shutil.copy(repo.keys_dir / "repo.json", online / "repo.json")
    for role in ("snapshot", "timestamp"):
        shutil.copytree(repo.keys_dir / role, online / role)
    noc = FleetRepo.open(repo.repo_dir, online)
    before = {r: noc.md[r].signed.version for r in FAMILY}
    done = noc.refresh()
    assert done.resigned == ["snapshot"] and done.needs_keys == FAMILY
    assert {r: noc.md[r].signed.version for r in FAMILY} == before
    dev = Device(tmp_path, "dev", repo.repo_dir, srv.url, "canary")
    assert dev.pointer()["version"] == "1.0.0"  # still valid: the timestamp was refreshed all the same
    with pytest.raises(RepoError) as ei:
        noc.resign(["canary"])  # the ring key is offline
    assert ei.value.code == "keys" and "canary" in str(ei.value)
    # where the keys are, the operator re-signs them; the online job then has nothing left to report
    FleetRepo.open(repo.repo_dir, repo.keys_dir).resign()
    assert FleetRepo.open(repo.repo_dir, online).refresh().needs_keys == []


def test_resign_chosen_roles(tmp_path, fleet_repo, make_bundle, fleet_pki, static_http):
    srv = static_http(fleet_repo.repo_dir)
    fleet_repo.publish(make_bundle("1.0.0"), keyring=fleet_pki.keyring)
    v = {r: fleet_repo.md[r].signed.version for r in ("root", "targets", "snapshot", "timestamp", *FAMILY[1:])}
    files_before = sorted(p.name for p in (fleet_repo.repo_dir / "metadata").iterdir())
    for bad in (["bogus"], [], ["canary", "nope"]):
        with pytest.raises(RepoError) as ei:
            fleet_repo.resign(bad)
        assert ei.value.code == "input"
    assert sorted(p.name for p in (fleet_repo.repo_dir / "metadata").iterdir()) == files_before

    out = fleet_repo.resign(["canary"])
    assert out == {"snapshot": v["snapshot"] + 1, "timestamp": v["timestamp"] + 1, "canary": v["canary"] + 1}
    assert fleet_repo.md["pilot"].signed.version == v["pilot"] and fleet_repo.md["targets"].signed.version == 1

    out = fleet_repo.resign(["root"])
    assert out["root"] == 2 and (fleet_repo.repo_dir / "metadata" / "2.root.json").exists()
    out = fleet_repo.resign()
    assert set(out) == {"targets", "snapshot", "timestamp", *FAMILY[1:]}
    dev = Device(tmp_path, "dev", fleet_repo.repo_dir, srv.url, "canary")
    assert dev.pointer()["version"] == "1.0.0"  # walks 1.root -> 2.root, accepts every re-signed role
    assert Metadata.from_file(str(dev.md_dir / "root.json")).signed.version == 2

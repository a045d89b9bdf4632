"""``endcap.trust.store`` on a real swtpm: installs, refusals with reasons, rollback and anti-rollback."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from endcap.core.errors import IntegrityError, UpdateError
from endcap.trust import manifest as mf
from endcap.trust.attest import EventLog, replay
from endcap.trust.store import Limits, ModelStore
from endcap.trust.tpm import Tpm
from endcap_models import sign
from tests.fixtures.trust import COMPATIBLE, make_package, make_pki, random_files

PCR = 16


def _store(tmp_path: Path, tcti: str, limits: Limits = Limits()) -> ModelStore:
    return ModelStore(tmp_path / "models", lambda: Tpm(tcti), compatible=COMPATIBLE, pcr=PCR,
                      event_log=EventLog(tmp_path / "run" / "events.json"), limits=limits)


@pytest.fixture
def installed(tmp_path, tpm_tcti, enrolled, pki):
    """A store with a signed epoch-1 model active: the 'running model' every refusal must leave alone."""
    store = _store(tmp_path, tpm_tcti)
    first = store.install(make_package(tmp_path / "v1", random_files(), pki=pki, version="1.0.0", epoch=1))
    return store, first


def _refused(store, src, code):
    before = store.active
    link = (store.root / "active").resolve()
    with pytest.raises(IntegrityError) as e:
        store.install(src)
    assert e.value.code == code, str(e.value)
    assert store.active == before
    assert (store.root / "active").resolve() == link
    assert not any((store.root / "staging").glob("*")) if (store.root / "staging").exists() else True
    return e.value


def test_signed_package_installs_activates_and_is_measured(tmp_path, tpm_tcti, installed):
    store, first = installed
    assert first.version == "1.0.0" and Path(first.path).is_dir()
    assert (store.root / "active").resolve() == Path(first.path).resolve()
    events = store.event_log.read()
    assert [e.digest for e in events] == [first.digest]
    with Tpm(tpm_tcti) as tpm:
        assert tpm.read_pcr(PCR) == replay(events, PCR)
        assert tpm.epoch() == 1  # raised after the health check passed
    for name, data in ((f, (tmp_path / "v1" / f).read_bytes()) for f in ("part0.bin", "part1.bin")):
        assert (Path(first.path) / name).read_bytes() == data


def test_unsigned_is_refused(tmp_path, installed):
    store, _ = installed
    err = _refused(store, make_package(tmp_path / "p", random_files(), pki=None, version="2"), "unsigned")
    assert "unsigned" in str(err)


def test_signed_by_another_key_is_refused(tmp_path, installed):
    store, _ = installed
    _refused(store, make_package(tmp_path / "p", random_files(), pki=make_pki(), version="2", epoch=1), "untrusted_root")


def test_signer_not_issued_by_our_root_but_chain_claims_it(tmp_path, installed, pki):
    """A foreign signer presented with our real root certificate: the chain link fails."""
    store, _ = installed
    foreign = make_pki()
    pkg = make_package(tmp_path / "p", random_files(), pki=None, version="2", epoch=1)
    sign.sign_package(pkg, foreign.signer_key, [foreign.signer, pki.root])
    _refused(store, pkg, "bad_chain")


def test_one_byte_changed_in_a_file_is_refused(tmp_path, installed, pki):
    store, _ = installed
    pkg = make_package(tmp_path / "p", random_files(), pki=pki, version="2", epoch=1)
    data = bytearray((pkg / "part1.bin").read_bytes())
    data[100] ^= 1
    (pkg / "part1.bin").write_bytes(bytes(data))
    _refused(store, pkg, "tampered")


def test_one_byte_changed_in_the_manifest_is_refused(tmp_path, installed, pki):
    store, _ = installed
    pkg = make_package(tmp_path / "p", random_files(), pki=pki, version="2", epoch=1)
    raw = (pkg / mf.MANIFEST).read_bytes().replace(b'"version": "2"', b'"version": "3"')
    (pkg / mf.MANIFEST).write_bytes(raw)
    _refused(store, pkg, "bad_signature")


def test_truncated_file_is_refused(tmp_path, installed, pki):
    store, _ = installed
    pkg = make_package(tmp_path / "p", random_files(), pki=pki, version="2", epoch=1)
    with open(pkg / "part0.bin", "r+b") as f:
        f.truncate(1000)
    _refused(store, pkg, "truncated")


def test_truncated_signature_is_refused(tmp_path, installed, pki):
    store, _ = installed
    pkg = make_package(tmp_path / "p", random_files(), pki=pki, version="2", epoch=1)
    sig = (pkg / mf.SIGNATURE).read_bytes()
    (pkg / mf.SIGNATURE).write_bytes(sig[: len(sig) // 2])
    _refused(store, pkg, "bad_signature_file")


def test_missing_file_is_refused(tmp_path, installed, pki):
    store, _ = installed
    pkg = make_package(tmp_path / "p", random_files(), pki=pki, version="2", epoch=1)
    (pkg / "part1.bin").unlink()
    _refused(store, pkg, "missing_file")


def test_extra_file_is_refused(tmp_path, installed, pki):
    store, _ = installed
    pkg = make_package(tmp_path / "p", random_files(), pki=pki, version="2", epoch=1)
    (pkg / "payload.so").write_bytes(b"\x7fELF")
    _refused(store, pkg, "extra_file")


def test_wrong_hardware_is_refused(tmp_path, installed, pki):
    store, _ = installed
    pkg = make_package(tmp_path / "p", random_files(), pki=pki, version="2", epoch=1, compatible="endcap-orin-nano")
    _refused(store, pkg, "wrong_hardware")


def test_path_traversal_name_is_refused(tmp_path, installed, pki):
    store, _ = installed
    pkg = make_package(tmp_path / "p", random_files(1), pki=None, version="2", epoch=1)
    man = json.loads((pkg / mf.MANIFEST).read_bytes())
    man["files"][0]["path"] = "../../etc/evil"
    (pkg / mf.MANIFEST).write_bytes((json.dumps(man, sort_keys=True, indent=1) + "\n").encode())
    sign.sign_package(pkg, pki.signer_key, pki.chain)  # validly signed: the name itself must be refused
    _refused(store, pkg, "bad_name")
    assert not (tmp_path / "etc").exists()


def test_symlinked_file_is_refused(tmp_path, installed, pki):
    store, _ = installed
    pkg = make_package(tmp_path / "p", random_files(), pki=pki, version="2", epoch=1)
    target = tmp_path / "outside.bin"
    (pkg / "part0.bin").rename(target)
    (pkg / "part0.bin").symlink_to(target)
    _refused(store, pkg, "not_regular")


def test_package_larger_than_the_limit_is_refused(tmp_path, tpm_tcti, enrolled, pki):
    store = _store(tmp_path, tpm_tcti, Limits(max_package_bytes=10_000, max_file_bytes=10_000))
    store.install(make_package(tmp_path / "v1", random_files(2, 4000), pki=pki, version="1", epoch=1))
    _refused(store, make_package(tmp_path / "p", random_files(3, 4000), pki=pki, version="2", epoch=1), "too_large")


def test_file_longer_than_listed_is_refused(tmp_path, installed, pki):
    store, _ = installed
    pkg = make_package(tmp_path / "p", random_files(), pki=pki, version="2", epoch=1)
    with open(pkg / "part0.bin", "ab") as f:
        f.write(b"more")
    _refused(store, pkg, "size_mismatch")


def test_older_security_epoch_is_refused(tmp_path, installed, pki):
    store, _ = installed
    store.install(make_package(tmp_path / "v2", random_files(), pki=pki, version="2.0.0", epoch=2))
    _refused(store, make_package(tmp_path / "old", random_files(), pki=pki, version="1.5.0", epoch=1), "rollback")


def test_restored_old_store_is_caught_by_the_tpm_counter(tmp_path, tpm_tcti, installed, pki):
    """Root backs up the store at epoch 1, the NOC ships epoch 2, root restores the backup."""
    store, first = installed
    backup = tmp_path / "backup"
    shutil.copytree(store.root, backup, symlinks=True)
    second = store.install(make_package(tmp_path / "v2", random_files(), pki=pki, version="2.0.0", epoch=2))
    assert second.security_epoch == 2
    shutil.rmtree(store.root)
    shutil.copytree(backup, store.root, symlinks=True)
    fresh = _store(tmp_path, tpm_tcti)
    with pytest.raises(IntegrityError) as e:
        fresh.load()
    assert e.value.code == "rollback"
    assert fresh.active is None  # never loaded unverified


def test_load_reverifies_the_active_model(tmp_path, tpm_tcti, installed):
    store, first = installed
    again = _store(tmp_path, tpm_tcti).load()
    assert again == first
    (Path(first.path) / "part0.bin").write_bytes(b"swapped on disk")
    with pytest.raises(IntegrityError) as e:
        _store(tmp_path, tpm_tcti).load()
    assert e.value.code in ("truncated", "size_mismatch", "tampered")


def test_failed_health_check_rolls_back_and_keeps_the_floor(tmp_path, tpm_tcti, installed, pki):
    store, first = installed
    seen = []

    def check(model):
        seen.append(model.version)
        raise IntegrityError("model does not load", code="model_load")

    with pytest.raises(UpdateError) as e:
        store.install(make_package(tmp_path / "v2", random_files(), pki=pki, version="2.0.0", epoch=5), check)
    assert e.value.code == "health_check_failed"
    assert seen == ["2.0.0"]
    assert store.active == first
    assert (store.root / "active").resolve() == Path(first.path).resolve()
    with Tpm(tpm_tcti) as tpm:
        assert tpm.epoch() == 1  # not raised: the new model never passed its health check
        assert tpm.read_pcr(PCR) == replay(store.event_log.read(), PCR)
    assert [e.version for e in store.event_log.read()] == ["1.0.0", "2.0.0", "1.0.0"]


def test_previous_model_is_kept(tmp_path, installed, pki):
    store, first = installed
    store.install(make_package(tmp_path / "v2", random_files(), pki=pki, version="2.0.0", epoch=1))
    assert (store.root / "previous").resolve() == Path(first.path).resolve()
    assert len(list((store.root / "versions").iterdir())) == 2


def test_no_tpm_no_install(tmp_path, pki):
    store = _store(tmp_path, f"swtpm:path={tmp_path}/absent")
    with pytest.raises(IntegrityError) as e:
        store.install(make_package(tmp_path / "p", random_files(), pki=pki))
    assert e.value.code == "tpm_unavailable"
    assert not (store.root / "active").exists()


def _failing_check(seen: list):
    def check(model):
        seen.append(model.version)
        raise IntegrityError("model does not load", code="model_load")
    return check


def test_rollback_whose_health_check_fails_keeps_previous_on_disk_and_active_unchanged(tmp_path, tpm_tcti, installed, pki):
    store, first = installed
    second = store.install(make_package(tmp_path / "v2", random_files(), pki=pki, version="2.0.0", epoch=1))
    files_before = {p.name: p.read_bytes() for p in Path(first.path).iterdir()}
    seen: list = []
    with pytest.raises(UpdateError) as e:
        store.rollback(_failing_check(seen))
    assert e.value.code == "health_check_failed" and seen == ["1.0.0"]
    assert store.active == second
    assert (store.root / "active").resolve() == Path(second.path).resolve()
    assert (store.root / "previous").resolve() == Path(first.path).resolve()  # still the rollback target
    assert {p.name: p.read_bytes() for p in Path(first.path).iterdir()} == files_before
    assert store.previous() is not None and store.previous().digest == first.digest
    with Tpm(tpm_tcti) as tpm:
        assert tpm.read_pcr(PCR) == replay(store.event_log.read(), PCR)
    # and a rollback that passes still works afterwards, swapping the two
    back = store.rollback()
    assert back.digest == first.digest and store.active.digest == first.digest
    assert (store.root / "previous").resolve() == Path(second.path).resolve()
    assert store.load().digest == first.digest  # re-verifies from disk


def test_reinstalling_the_kept_previous_version_with_a_failing_check_keeps_it(tmp_path, installed, pki):
    store, first = installed
    store.install(make_package(tmp_path / "v2", random_files(), pki=pki, version="2.0.0", epoch=1))
    with pytest.raises(UpdateError):
        store.install(tmp_path / "v1", _failing_check([]))  # the same package as the kept previous one
    assert (store.root / "previous").resolve() == Path(first.path).resolve()
    assert store.previous() is not None and store.previous().digest == first.digest
    assert not (store.root / "staging").exists() or not any((store.root / "staging").iterdir())

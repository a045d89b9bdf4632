"""Attestation on a real swtpm: a quote over the measured model verifies; tampering does not."""
from __future__ import annotations

import os

import msgspec
import pytest

from endcap.core.errors import IntegrityError
from endcap.trust.attest import Event, Evidence, EventLog, parse_quote, verify_quote
from endcap.trust.store import ModelStore
from endcap.trust.tpm import Tpm
from tests.fixtures.trust import COMPATIBLE, make_package, random_files

PCR = 16


def _evidence(tcti: str, log: EventLog, nonce: bytes) -> Evidence:
    with Tpm(tcti) as tpm:
        q = tpm.quote(PCR, nonce)
    return Evidence(attest=q.attest, signature_r=q.signature_r, signature_s=q.signature_s, pcr=PCR, nonce=nonce,
                    events=log.read())


@pytest.fixture
def running(tmp_path, tpm_tcti, enrolled, pki):
    log = EventLog(tmp_path / "run" / "events.json")
    store = ModelStore(tmp_path / "models", lambda: Tpm(tpm_tcti), compatible=COMPATIBLE, pcr=PCR, event_log=log)
    store.install(make_package(tmp_path / "v1", random_files(), pki=pki, version="1.0.0", epoch=1))
    active = store.install(make_package(tmp_path / "v2", random_files(), pki=pki, version="2.0.0", epoch=1))
    return store, active, log


def test_quote_over_the_active_model_verifies(tpm_tcti, enrolled, running):
    store, active, log = running
    nonce = os.urandom(32)
    ev = _evidence(tpm_tcti, log, nonce)
    last = verify_quote(enrolled.ak_public_pem, ev, nonce, PCR)
    assert last is not None and last.digest == active.digest and last.version == "2.0.0"
    extra, selected, _ = parse_quote(ev.attest)
    assert extra == nonce and selected == [(0x000B, PCR)]
    wire = msgspec.msgpack.decode(msgspec.msgpack.encode(ev), type=Evidence)  # evidence travels as msgpack
    assert verify_quote(enrolled.ak_public_pem, wire, nonce, PCR) == last


def test_tampered_event_log_does_not_verify(tpm_tcti, enrolled, running):
    store, active, log = running
    nonce = os.urandom(16)
    ev = _evidence(tpm_tcti, log, nonce)
    forged = [*ev.events[:-1], Event(pcr=PCR, digest="00" * 32, name="basket", version="9.9.9", security_epoch=9)]
    with pytest.raises(IntegrityError) as e:
        verify_quote(enrolled.ak_public_pem, msgspec.structs.replace(ev, events=forged), nonce, PCR)
    assert e.value.code == "log_mismatch"
    with pytest.raises(IntegrityError) as e:  # hiding the current model: claim the older one is the last
        verify_quote(enrolled.ak_public_pem, msgspec.structs.replace(ev, events=ev.events[:-1]), nonce, PCR)
    assert e.value.code == "log_mismatch"


def test_replayed_or_forged_quote_does_not_verify(tpm_tcti, enrolled, running):
    _, _, log = running
    ev = _evidence(tpm_tcti, log, b"old nonce")
    with pytest.raises(IntegrityError) as e:
        verify_quote(enrolled.ak_public_pem, ev, b"fresh nonce", PCR)
    assert e.value.code == "bad_quote"
    flipped = bytearray(ev.attest)
    flipped[-1] ^= 1
    with pytest.raises(IntegrityError) as e:
        verify_quote(enrolled.ak_public_pem, msgspec.structs.replace(ev, attest=bytes(flipped)), b"old nonce", PCR)
    assert e.value.code == "bad_quote"


def test_quote_by_another_tpm_key_does_not_verify(tpm_tcti, enrolled, running, tmp_path):
    from endcap.trust.enrol import ak_pem
    from cryptography.hazmat.primitives.asymmetric import ec

    _, _, log = running
    ev = _evidence(tpm_tcti, log, b"n")
    n = ec.generate_private_key(ec.SECP256R1()).public_key().public_numbers()
    other = ak_pem((n.x.to_bytes(32, "big"), n.y.to_bytes(32, "big")))
    with pytest.raises(IntegrityError) as e:
        verify_quote(other, ev, b"n", PCR)
    assert e.value.code == "bad_quote"


def test_after_reboot_the_active_model_is_measured_again(tmp_path, tpm_tcti, enrolled, running):
    """A reboot resets the PCR (here: PCR 16 reset) while /run is emptied; load re-measures."""
    store, active, log = running
    from tpm2_pytss import ESAPI
    from tpm2_pytss.constants import ESYS_TR

    with ESAPI(tpm_tcti) as esys:
        esys.pcr_reset(ESYS_TR.PCR16)
    fresh = ModelStore(store.root, lambda: Tpm(tpm_tcti), compatible=COMPATIBLE, pcr=PCR, event_log=log)
    assert fresh.load() == active
    nonce = os.urandom(8)
    assert verify_quote(enrolled.ak_public_pem, _evidence(tpm_tcti, log, nonce), nonce, PCR).digest == active.digest
    assert len(log.read()) == 1


def test_unexplained_pcr_is_reported(tmp_path, tpm_tcti, enrolled, running):
    store, _, log = running
    with Tpm(tpm_tcti) as tpm:
        tpm.extend(PCR, b"\x11" * 32)  # something measured that the log does not know
    fresh = ModelStore(store.root, lambda: Tpm(tpm_tcti), compatible=COMPATIBLE, pcr=PCR, event_log=log)
    with pytest.raises(IntegrityError) as e:
        fresh.load()
    assert e.value.code == "log_mismatch"

"""The ``trust`` service over the real bus and a real swtpm: install, active/attested, TPM loss.

The service runs in a thread through its ``main(ctx)`` so a test can stop the TPM under it; the service
as a real ``endcap service trust`` process is exercised by ``endcap run`` (tests/integration/test_devrun.py).
"""
from __future__ import annotations

import os
import shutil

import pynng
import pytest

from endcap.core import messages as m
from endcap.core.bus import Codec
from endcap.core.errors import RemoteError
from endcap.trust.attest import verify_quote
from endcap.trust.enrol import enrol
from endcap.core.messages import AttestReply, AttestRequest, Installed, InstallRequest, TrustStatus
from endcap.trust.tpm import Tpm
from endcap_models import sign
from endcap.launcher import wait_health
from tests.fixtures.swtpm import start_swtpm
from tests.fixtures.trust import RunningTrust, make_package, random_files


Running = RunningTrust


def test_install_active_attested_and_refusal(trust_root, tpm_tcti, enrolled, pki):
    svc = Running(tpm_tcti, trust_root)
    try:
        sub = pynng.Sub0(recv_timeout=10_000)
        sub.subscribe(b"trust.model\0")
        sub.dial(svc.paths.pub_address("trust"), block=False)
        assert svc.call("active", m.Empty(), TrustStatus).model is None
        pkg = make_package(trust_root / "pkg1", random_files(), pki=pki, version="1.0.0", epoch=2)
        model = svc.call("install", InstallRequest(str(pkg)), Installed)
        assert model.version == "1.0.0"
        status = svc.call("active", m.Empty(), TrustStatus)
        assert status.model == model and status.floor_epoch == 2 and status.tpm == "ok" and status.attested
        nonce = os.urandom(32)
        reply = svc.call("attest", AttestRequest(nonce), AttestReply)
        assert verify_quote(enrolled.ak_public_pem, reply.evidence, nonce, 16).digest == model.digest
        topic, _, payload = sub.recv().partition(b"\0")
        codec = Codec("test")
        assert codec.decode_body(codec.decode_envelope(payload).body, Installed) == model
        sub.close()
        bad = make_package(trust_root / "pkg2", random_files(), pki=pki, version="0.9.0", epoch=1)
        with pytest.raises(RemoteError) as e:
            svc.call("install", InstallRequest(str(bad)), Installed)
        assert e.value.code == "rollback" and "epoch 1" in str(e.value)
        assert svc.call("active", m.Empty(), TrustStatus).model == model
        wait_health(svc.paths, "trust", lambda h: h.ok)
    finally:
        svc.stop()


@pytest.fixture
def own_tpm(pki):
    """A swtpm of this test alone, enrolled under ``pki``'s root: the test may stop it or lock it out."""
    tpm = start_swtpm()
    try:
        with Tpm(tpm.tcti) as t:
            enrol(t, sign.root_key_hash(pki.root))
        yield tpm
    finally:
        tpm.stop()
        shutil.rmtree(tpm.state_dir, ignore_errors=True)


def test_tpm_lost_keeps_serving_and_absent_tpm_never_loads_unverified(trust_root, pki, own_tpm):
    tpm = own_tpm
    svc = Running(tpm.tcti, trust_root)
    try:
        model = svc.call("install", InstallRequest(str(make_package(trust_root / "p", random_files(), pki=pki))), Installed)
        wait_health(svc.paths, "trust", lambda h: h.ok)
        tpm.stop()
        h = wait_health(svc.paths, "trust", lambda h: not h.ok)
        assert h.last_error.code == "tpm_unavailable" and "not reachable" in h.last_error.message
        status = svc.call("active", m.Empty(), TrustStatus)
        assert status.model == model and status.tpm == "tpm_unavailable" and not status.attested
        with pytest.raises(RemoteError) as e:
            svc.call("install", InstallRequest(str(make_package(trust_root / "q", random_files(), pki=pki, version="2"))), Installed)
        assert e.value.code == "tpm_unavailable"
    finally:
        svc.stop()
    again = Running(tpm.tcti, trust_root)  # restart with the TPM still gone: the stored model is not loaded
    try:
        status = again.call("active", m.Empty(), TrustStatus)
        assert status.model is None and status.tpm == "tpm_unavailable"
        h = wait_health(again.paths, "trust", lambda h: not h.ok and h.last_error is not None)
        assert h.last_error.code == "tpm_unavailable"
    finally:
        again.stop()


def _lock_out(tcti: str) -> None:
    """What an attacker guessing a DA-protected TPM secret causes: one wrong try with maxTries = 1."""
    from tpm2_pytss import ESAPI
    from tpm2_pytss.constants import ESYS_TR, TPM2_ALG, TPMA_NV
    from tpm2_pytss.TSS2_Exception import TSS2_Exception
    from tpm2_pytss.types import TPM2B_NV_PUBLIC, TPMS_NV_PUBLIC

    with ESAPI(tcti) as esys:
        esys.dictionary_attack_parameters(1, 3600, 3600)
        pub = TPM2B_NV_PUBLIC(nvPublic=TPMS_NV_PUBLIC(nvIndex=0x01000F00, nameAlg=TPM2_ALG.SHA256,
                              attributes=TPMA_NV.AUTHWRITE | TPMA_NV.AUTHREAD, dataSize=8))
        tr = esys.nv_define_space(b"right", pub, ESYS_TR.OWNER)
        esys.tr_set_auth(tr, b"wrong")
        with pytest.raises(TSS2_Exception):
            esys.nv_write(tr, b"12345678", 0, auth_handle=tr)


def test_lockout_is_reported_and_the_model_keeps_running(trust_root, pki, own_tpm):
    tpm = own_tpm
    svc = Running(tpm.tcti, trust_root)
    try:
        model = svc.call("install", InstallRequest(str(make_package(trust_root / "p", random_files(), pki=pki))), Installed)
        wait_health(svc.paths, "trust", lambda h: h.ok)
        _lock_out(tpm.tcti)
        h = wait_health(svc.paths, "trust", lambda h: not h.ok)
        assert h.last_error.code == "tpm_lockout"
        status = svc.call("active", m.Empty(), TrustStatus)
        assert status.model == model and status.attested and status.tpm == "tpm_lockout"  # NODA: still verifies
    finally:
        svc.stop()

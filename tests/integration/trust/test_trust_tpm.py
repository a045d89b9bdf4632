"""``endcap.trust.tpm`` and enrolment against a real swtpm (one per test worker, cleared per test)."""
from __future__ import annotations

import hashlib

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from endcap.core.errors import IntegrityError
from endcap.trust.enrol import enrol
from endcap.trust.tpm import Anchor, Tpm
from endcap_models import sign


def _xy_sig(key, data: bytes):
    n = key.public_key().public_numbers()
    r, s = decode_dss_signature(key.sign(data, ec.ECDSA(hashes.SHA256())))
    return (n.x.to_bytes(32, "big"), n.y.to_bytes(32, "big")), r.to_bytes(32, "big"), s.to_bytes(32, "big")


def test_unreachable_tpm_is_tpm_unavailable(tmp_path):
    with pytest.raises(IntegrityError) as e:
        Tpm(f"swtpm:path={tmp_path}/nothing").open()
    assert e.value.code == "tpm_unavailable"


def test_not_enrolled_has_no_anchor(tpm_tcti):
    with Tpm(tpm_tcti) as tpm, pytest.raises(IntegrityError) as e:
        tpm.read_anchor()
    assert e.value.code == "anchor"


def test_enrol_is_idempotent_and_refuses_another_root(tpm_tcti, pki):
    h = sign.root_key_hash(pki.root)
    with Tpm(tpm_tcti) as tpm:
        first = enrol(tpm, h)
        second = enrol(tpm, h)
        assert first == second
        assert tpm.read_anchor() == Anchor(h, first.counter_base)
        assert tpm.epoch() == 0
        with pytest.raises(IntegrityError) as e:
            enrol(tpm, hashlib.sha256(b"another root").digest())
        assert e.value.code == "anchor_mismatch"
    assert "BEGIN PUBLIC KEY" in first.ak_public_pem


def test_anchor_is_write_locked(tpm_tcti, enrolled):
    from tpm2_pytss import ESAPI
    from tpm2_pytss.constants import ESYS_TR
    from tpm2_pytss.TSS2_Exception import TSS2_Exception

    with ESAPI(tpm_tcti) as esys:
        tr = esys.tr_from_tpmpublic(enrolled.anchor_index)
        with pytest.raises(TSS2_Exception):  # even the owner cannot rewrite the anchor
            esys.nv_write(tr, b"X" * 44, 0, auth_handle=ESYS_TR.OWNER)


def test_counter_epoch_only_rises(tpm_tcti, enrolled):
    with Tpm(tpm_tcti) as tpm:
        assert tpm.raise_epoch(3) == 3
        assert tpm.raise_epoch(2) == 3  # a lower epoch never lowers the floor
        assert tpm.read_counter() == enrolled.counter_base + 3


def test_counter_replaced_by_an_ordinary_index_is_refused(tpm_tcti, enrolled):
    """Root with owner auth deletes the counter and defines a writable index in its place."""
    from tpm2_pytss import ESAPI
    from tpm2_pytss.constants import ESYS_TR, TPM2_ALG, TPMA_NV
    from tpm2_pytss.types import TPM2B_NV_PUBLIC, TPMS_NV_PUBLIC

    with ESAPI(tpm_tcti) as esys:
        esys.nv_undefine_space(esys.tr_from_tpmpublic(enrolled.counter_index), ESYS_TR.OWNER)
        pub = TPM2B_NV_PUBLIC(nvPublic=TPMS_NV_PUBLIC(nvIndex=enrolled.counter_index, nameAlg=TPM2_ALG.SHA256,
                              attributes=TPMA_NV.AUTHWRITE | TPMA_NV.AUTHREAD | TPMA_NV.NO_DA, dataSize=8))
        tr = esys.nv_define_space(b"", pub, ESYS_TR.OWNER)
        esys.nv_write(tr, enrolled.counter_base.to_bytes(8, "big"), 0, auth_handle=tr)
    with Tpm(tpm_tcti) as tpm, pytest.raises(IntegrityError) as e:
        tpm.epoch()
    assert e.value.code == "counter"


def test_signature_checked_inside_the_tpm(tpm_tcti):
    key = ec.generate_private_key(ec.SECP256R1())
    xy, r, s = _xy_sig(key, b"manifest bytes")
    with Tpm(tpm_tcti) as tpm:
        tpm.verify_ecdsa_p256(xy, hashlib.sha256(b"manifest bytes").digest(), r, s)
        with pytest.raises(IntegrityError) as e:
            tpm.verify_ecdsa_p256(xy, hashlib.sha256(b"manifest bytez").digest(), r, s)
        assert e.value.code == "bad_signature"
        other, _, _ = _xy_sig(ec.generate_private_key(ec.SECP256R1()), b"x")
        with pytest.raises(IntegrityError) as e:
            tpm.verify_ecdsa_p256(other, hashlib.sha256(b"manifest bytes").digest(), r, s)
        assert e.value.code == "bad_signature"


def test_extend_and_read_pcr(tpm_tcti):
    d = hashlib.sha256(b"m").digest()
    with Tpm(tpm_tcti) as tpm:
        assert tpm.read_pcr(16) == bytes(32)
        tpm.extend(16, d)
        assert tpm.read_pcr(16) == hashlib.sha256(bytes(32) + d).digest()


def test_handles_are_flushed(tpm_tcti):
    """Many verifications in one context: a leaked transient handle would exhaust the TPM's slots."""
    from tpm2_pytss.constants import TPM2_CAP, TPM2_HT

    key = ec.generate_private_key(ec.SECP256R1())
    xy, r, s = _xy_sig(key, b"x")
    with Tpm(tpm_tcti) as tpm:
        for _ in range(10):
            tpm.verify_ecdsa_p256(xy, hashlib.sha256(b"x").digest(), r, s)
        _, data = tpm.esys.get_capability(TPM2_CAP.HANDLES, TPM2_HT.TRANSIENT << 24, 64)
        assert len(data.data.handles) == 0

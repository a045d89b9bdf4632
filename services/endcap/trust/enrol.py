"""Enrolment hook for provisioning: anchor, rollback counter and attestation key, once per device.

Responsibility: make the TPM state trust needs and return its public parts for the NOC's records.
Idempotent: a second call with the same root finds everything in place and returns the same record;
with a *different* root it refuses (``IntegrityError(code="anchor_mismatch")``) — re-rooting a device
means clearing its TPM owner hierarchy on the staging bench, deliberately.

Order matters: the counter is defined first so that its base (the TPM's highest counter value at
that moment) goes into the anchor, which is then write-locked; epoch = counter − base from then on.
Owner authorisation: the staging bench runs this with the owner hierarchy's auth (empty on a fresh
TPM) and then sets a random owner auth that only the NOC escrow knows (docs/trust.md); the runtime
never needs it.
"""
from __future__ import annotations

import msgspec
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from ..core.errors import IntegrityError
from .tpm import Anchor, Tpm


class Enrolment(msgspec.Struct, frozen=True, kw_only=True):
    """Public parts of a device's trust enrolment (nothing secret)."""

    anchor_index: int
    counter_index: int
    counter_base: int
    root_key_sha256: str  # hex
    ak_handle: int
    ak_public_pem: str  # SubjectPublicKeyInfo of the AK: the NOC verifies quotes with it


def ak_pem(xy: tuple[bytes, bytes]) -> str:
    key = ec.EllipticCurvePublicNumbers(int.from_bytes(xy[0], "big"), int.from_bytes(xy[1], "big"), ec.SECP256R1()).public_key()
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def enrol(tpm: Tpm, root_key_sha256: bytes) -> Enrolment:
    """Create (or find) the anchor, counter and AK on an open ``tpm``; return their public parts.

    Raises:
        IntegrityError: ``anchor_mismatch`` when the device is anchored to another root; TPM faults.
    """
    if len(root_key_sha256) != 32:
        raise IntegrityError("root key hash must be 32 bytes (SHA-256)", code="anchor")
    if tpm.anchor_defined():
        anchor = tpm.read_anchor()
        if anchor.root_key_sha256 != root_key_sha256:
            raise IntegrityError("device is already enrolled with another model-signing root", code="anchor_mismatch")
        tpm.define_counter()  # restores a deleted counter; it restarts at or above the TPM's highest value
    else:
        anchor = Anchor(root_key_sha256, tpm.define_counter())
        tpm.define_anchor(anchor)
        anchor = tpm.read_anchor()
    xy = tpm.ak_public() or tpm.create_ak()
    tpm.epoch()  # proves counter and anchor read back with the right attributes
    return Enrolment(anchor_index=tpm.anchor_index, counter_index=tpm.counter_index, counter_base=anchor.counter_base,
                     root_key_sha256=root_key_sha256.hex(), ak_handle=tpm.ak_handle, ak_public_pem=ak_pem(xy))

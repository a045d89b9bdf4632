"""Measurement event log and the quote verifier (pure: ``cryptography`` and the standard library).

Responsibility: the device appends one ``Event`` per activated manifest to a local log and extends
the same SHA-256 digest into the measurement PCR; a verifier (the NOC, the maintenance page, tests)
checks an AK quote and replays the log to the quoted PCR, so the log's last event is proven to be
the model the device runs.

Invariants:
- ``replay`` starts from 32 zero bytes, as a PCR does after reset, and folds ``sha256(pcr || digest)``;
- the log is written (atomically) before the PCR is extended: a crash in between leaves a log that
  no longer replays, which verification reports; it can never make the log look better than the PCR;
- ``verify_quote`` accepts only: a valid ECDSA P-256/SHA-256 signature by the given AK over the
  TPMS_ATTEST bytes, ``TPM_GENERATED_VALUE`` magic, type ``TPM_ST_ATTEST_QUOTE``, the caller's nonce,
  exactly one selected SHA-256 PCR (the given one), and a PCR digest equal to the replayed log.
The log lives in ``/run`` (tmpfs), because the PCR it mirrors is reset at every boot.
"""
from __future__ import annotations

import hashlib
import struct
from pathlib import Path

import msgspec
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from ..core.atomic import atomic_write
from ..core.errors import IntegrityError
from ..core.messages import Evidence, MeasuredEvent

TPM_GENERATED = 0xFF544347
ST_ATTEST_QUOTE = 0x8018
ALG_SHA256 = 0x000B


# The bodies live in the shared message catalogue; ``Event`` is the log entry's historic name here.
Event = MeasuredEvent


class EventLog:
    def __init__(self, path: Path) -> None:
        self.path = path

    def read(self) -> list[Event]:
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return []
        try:
            return msgspec.json.decode(data, type=list[Event])
        except (msgspec.DecodeError, msgspec.ValidationError) as e:
            raise IntegrityError(f"event log {self.path}: unreadable: {e}", code="event_log") from e

    def append(self, event: Event) -> None:
        atomic_write(self.path, msgspec.json.encode([*self.read(), event]))


def replay(events: list[Event], pcr: int) -> bytes:
    value = bytes(32)
    for ev in events:
        if ev.pcr == pcr:
            value = hashlib.sha256(value + bytes.fromhex(ev.digest)).digest()
    return value


def _tpm2b(data: bytes, off: int) -> tuple[bytes, int]:
    (n,) = struct.unpack_from(">H", data, off)
    end = off + 2 + n
    if end > len(data):
        raise ValueError("truncated TPM2B")
    return data[off + 2:end], end


def parse_quote(attest: bytes) -> tuple[bytes, list[tuple[int, int]], bytes]:
    """(extraData, [(hash alg, pcr)], pcrDigest) from TPMS_ATTEST bytes of a quote.

    Raises:
        IntegrityError(code="bad_quote"): not a TPM-generated quote structure.
    """
    try:
        magic, typ = struct.unpack_from(">IH", attest, 0)
        if magic != TPM_GENERATED or typ != ST_ATTEST_QUOTE:
            raise ValueError(f"magic {magic:#x} type {typ:#x} is not a TPM-generated quote")
        _signer, off = _tpm2b(attest, 6)
        extra, off = _tpm2b(attest, off)
        off += 8 + 4 + 4 + 1 + 8  # clockInfo (clock, resetCount, restartCount, safe) + firmwareVersion
        (count,) = struct.unpack_from(">I", attest, off)
        off += 4
        selected: list[tuple[int, int]] = []
        for _ in range(count):
            alg, size = struct.unpack_from(">HB", attest, off)
            bitmap = attest[off + 3:off + 3 + size]
            off += 3 + size
            selected += [(alg, i * 8 + b) for i, byte in enumerate(bitmap) for b in range(8) if byte >> b & 1]
        digest, off = _tpm2b(attest, off)
        if off != len(attest):
            raise ValueError("trailing bytes after the quote")
    except (struct.error, ValueError) as e:
        raise IntegrityError(f"quote does not parse: {e}", code="bad_quote") from e
    return extra, selected, digest


def verify_quote(ak_public_pem: str, evidence: Evidence, nonce: bytes, pcr: int) -> Event | None:
    """Verify ``evidence`` and return the last event measured into ``pcr`` (None: nothing measured).

    Raises:
        IntegrityError: ``bad_quote`` (signature, nonce, selection) or ``log_mismatch`` (the log does
        not replay to the quoted PCR: tampered, truncated or stale).
    """
    key = serialization.load_pem_public_key(ak_public_pem.encode())
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
        raise IntegrityError("attestation key is not EC P-256", code="bad_quote")
    der = encode_dss_signature(int.from_bytes(evidence.signature_r, "big"), int.from_bytes(evidence.signature_s, "big"))
    try:
        key.verify(der, evidence.attest, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature as e:
        raise IntegrityError("quote signature is not by this device's attestation key", code="bad_quote") from e
    extra, selected, digest = parse_quote(evidence.attest)
    if extra != nonce:
        raise IntegrityError("quote nonce is not ours (replayed quote?)", code="bad_quote")
    if selected != [(ALG_SHA256, pcr)]:
        raise IntegrityError(f"quote covers {selected}, not SHA-256 PCR {pcr}", code="bad_quote")
    if hashlib.sha256(replay(evidence.events, pcr)).digest() != digest:
        raise IntegrityError("event log does not replay to the quoted PCR (tampered or stale log)", code="log_mismatch")
    mine = [e for e in evidence.events if e.pcr == pcr]
    return mine[-1] if mine else None

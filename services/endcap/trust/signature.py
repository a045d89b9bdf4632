"""Device side of package signatures: check ``manifest.sig`` against the TPM anchor, then in the TPM.

Responsibility: decide whether ``manifest.json`` (exact bytes) was signed by a model signer whose
certificate chain ends in the root whose key hash the TPM anchor holds.

Invariants (each failure is an ``IntegrityError`` whose code names the reason):
- ``manifest.sig`` is JSON ``{format: 1, alg: "ecdsa-p256-sha256", signature: base64 DER, chain: [PEM …]}``,
  signer first and root last, at most ``MAX_CHAIN`` certificates (``unsigned`` / ``bad_signature_file``);
- SHA-256 of the root's SubjectPublicKeyInfo equals the anchor (``untrusted_root``); each certificate is
  signed by the next, issuers are CAs allowed to sign certificates, the signer is a non-CA leaf with
  digitalSignature and the codeSigning EKU, every key is EC P-256 (``bad_chain``);
- the signature itself is checked by the TPM (LoadExternal + VerifySignature) over SHA-256 of the
  manifest bytes (``bad_signature``).
Validity periods are not enforced: the device clock is not trusted before the network is, and a
signed package stays valid until the root is rotated or its epoch is superseded (docs/trust.md).
"""
from __future__ import annotations

import base64
import binascii
import hashlib

import msgspec
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import ExtendedKeyUsageOID

from ..core.errors import IntegrityError

SIG_FORMAT = 1
ALG = "ecdsa-p256-sha256"
MAX_SIG_BYTES = 64 << 10
MAX_CHAIN = 4


class SignatureFile(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    format: int
    alg: str
    signature: str
    chain: list[str]


def decode_signature_file(data: bytes, where: str) -> tuple[bytes, list[x509.Certificate]]:
    """(DER signature, certificates) from ``manifest.sig`` bytes."""
    try:
        sf = msgspec.json.decode(data, type=SignatureFile, strict=True)
        der = base64.b64decode(sf.signature, validate=True)
    except (msgspec.DecodeError, msgspec.ValidationError, binascii.Error) as e:
        raise IntegrityError(f"{where}: not a valid signature file: {e}", code="bad_signature_file") from e
    if sf.format != SIG_FORMAT or sf.alg != ALG:
        raise IntegrityError(f"{where}: format {sf.format} alg {sf.alg!r} is not {SIG_FORMAT} {ALG!r}", code="bad_signature_file")
    if not 1 <= len(sf.chain) <= MAX_CHAIN:
        raise IntegrityError(f"{where}: chain of {len(sf.chain)} certificates (1..{MAX_CHAIN} allowed)", code="bad_signature_file")
    try:
        certs = [x509.load_pem_x509_certificate(p.encode()) for p in sf.chain]
    except ValueError as e:
        raise IntegrityError(f"{where}: a chain certificate does not parse: {e}", code="bad_signature_file") from e
    return der, certs


def spki_sha256(cert: x509.Certificate) -> bytes:
    spki = cert.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(spki).digest()


def _p256(cert: x509.Certificate, where: str) -> ec.EllipticCurvePublicKey:
    key = cert.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
        raise IntegrityError(f"{where}: certificate {cert.subject.rfc4514_string()} is not EC P-256", code="bad_chain")
    return key


def _ext(cert: x509.Certificate, typ):
    try:
        return cert.extensions.get_extension_for_class(typ).value
    except x509.ExtensionNotFound:
        return None


def check_chain(certs: list[x509.Certificate], anchor_sha256: bytes, where: str) -> ec.EllipticCurvePublicKey:
    """The signer's public key, once the chain is proven to lead to the anchored root.

    Raises:
        IntegrityError: ``untrusted_root`` (another key) or ``bad_chain`` (broken links or roles).
    """
    root = certs[-1]
    if spki_sha256(root) != anchor_sha256:
        raise IntegrityError(f"{where}: signed under {root.subject.rfc4514_string()}, not the root this device trusts "
                             "(signed by another key)", code="untrusted_root")
    for cert in certs:
        _p256(cert, where)
    for child, issuer in zip(certs, certs[1:]):
        bc, ku = _ext(issuer, x509.BasicConstraints), _ext(issuer, x509.KeyUsage)
        if bc is None or not bc.ca or ku is None or not ku.key_cert_sign:
            raise IntegrityError(f"{where}: {issuer.subject.rfc4514_string()} is not a CA allowed to sign certificates", code="bad_chain")
        try:
            child.verify_directly_issued_by(issuer)
        except (ValueError, TypeError, InvalidSignature) as e:
            raise IntegrityError(f"{where}: {child.subject.rfc4514_string()} is not issued by "
                                 f"{issuer.subject.rfc4514_string()}", code="bad_chain") from e
    if len(certs) == 1:
        raise IntegrityError(f"{where}: signed by the root itself; the root only certifies signers", code="bad_chain")
    signer = certs[0]
    bc, ku, eku = _ext(signer, x509.BasicConstraints), _ext(signer, x509.KeyUsage), _ext(signer, x509.ExtendedKeyUsage)
    if (bc is not None and bc.ca) or ku is None or not ku.digital_signature or eku is None \
            or ExtendedKeyUsageOID.CODE_SIGNING not in eku:
        raise IntegrityError(f"{where}: {signer.subject.rfc4514_string()} is not a code-signing leaf", code="bad_chain")
    return _p256(signer, where)


def verify_manifest_signature(tpm, manifest_bytes: bytes, sig_bytes: bytes, where: str) -> None:
    """Check ``sig_bytes`` over ``manifest_bytes`` against the TPM's anchor, with the TPM.

    Raises:
        IntegrityError: see the module docstring for the codes; TPM faults keep their ``tpm_*`` codes.
    """
    der, certs = decode_signature_file(sig_bytes, where)
    signer = check_chain(certs, tpm.read_anchor().root_key_sha256, where)
    try:
        r, s = decode_dss_signature(der)
    except ValueError as e:
        raise IntegrityError(f"{where}: signature is not DER ECDSA", code="bad_signature") from e
    if not (0 < r < 1 << 256 and 0 < s < 1 << 256):
        raise IntegrityError(f"{where}: signature values out of range", code="bad_signature")
    n = signer.public_numbers()
    xy = (n.x.to_bytes(32, "big"), n.y.to_bytes(32, "big"))
    try:
        tpm.verify_ecdsa_p256(xy, hashlib.sha256(manifest_bytes).digest(), r.to_bytes(32, "big"), s.to_bytes(32, "big"))
    except IntegrityError as e:
        if e.code == "bad_signature":
            raise IntegrityError(f"{where}: the TPM rejects the signature over manifest.json (tampered manifest "
                                 "or wrong key)", code="bad_signature") from e
        raise

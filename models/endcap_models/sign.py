"""NOC side: sign a model package (``endcap-model sign``) and make the model-signing PKI.

Responsibility: ECDSA P-256 / SHA-256 over the exact bytes of ``manifest.json`` (the canonical encoding
``endcap.trust.manifest.encode_manifest`` writes), stored in the package's reserved ``manifest.sig`` as
JSON ``{"format": 1, "alg": "ecdsa-p256-sha256", "signature": base64(DER), "chain": [PEM signer, …, PEM root]}``.
The gateway checks the chain up to the root whose key hash sits in its TPM anchor, then has the TPM
verify the signature. Keys live on the NOC (an HSM or an offline, encrypted PEM); they never go into
the image. ``make_root``/``make_signer`` are what tests and ``endcap run`` use to make throwaway PKI;
real keys are made as ``docs/trust.md`` describes.
"""
from __future__ import annotations

import argparse
import base64
import datetime as dt
import json
from pathlib import Path
from typing import Optional

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

SIG_FORMAT = 1
ALG = "ecdsa-p256-sha256"
MANIFEST = "manifest.json"
SIGNATURE = "manifest.sig"


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Endcap NOC"), x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _builder(subject: str, issuer: x509.Name, key: ec.EllipticCurvePrivateKey, days: int) -> x509.CertificateBuilder:
    now = dt.datetime.now(dt.timezone.utc)
    return (x509.CertificateBuilder().subject_name(_name(subject)).issuer_name(issuer).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=days)))


def make_root(cn: str = "Endcap model-signing root", days: int = 7300) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """A self-signed CA (P-256) that may only issue certificates: the key whose hash the TPM anchors."""
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (_builder(cn, _name(cn), key, days)
            .add_extension(x509.BasicConstraints(ca=True, path_length=1), critical=True)
            .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
            .sign(key, hashes.SHA256()))
    return key, cert


def make_signer(issuer_key: ec.EllipticCurvePrivateKey, issuer: x509.Certificate, cn: str = "Endcap model signer",
                days: int = 730) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """A leaf (P-256) for signing manifests: digitalSignature + codeSigning, not a CA."""
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (_builder(cn, issuer.subject, key, days)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False, False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False)
            .sign(issuer_key, hashes.SHA256()))
    return key, cert


def root_key_hash(root: x509.Certificate) -> bytes:
    """SHA-256 of the root's SubjectPublicKeyInfo (DER): what enrolment writes into the TPM anchor."""
    spki = root.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    h = hashes.Hash(hashes.SHA256())
    h.update(spki)
    return h.finalize()


def signature_file(manifest_bytes: bytes, key: ec.EllipticCurvePrivateKey, chain: list[x509.Certificate]) -> bytes:
    """The ``manifest.sig`` bytes for ``manifest_bytes``; ``chain`` is signer first, root last."""
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        raise ValueError("the model-signing key must be ECDSA P-256")
    if chain[0].public_key().public_numbers() != key.public_key().public_numbers():
        raise ValueError("the first certificate of the chain is not the signing key's")
    der = key.sign(manifest_bytes, ec.ECDSA(hashes.SHA256()))
    body = {"format": SIG_FORMAT, "alg": ALG, "signature": base64.b64encode(der).decode(),
            "chain": [c.public_bytes(serialization.Encoding.PEM).decode() for c in chain]}
    return (json.dumps(body, indent=1, sort_keys=True) + "\n").encode()


def sign_package(directory: str | Path, key: ec.EllipticCurvePrivateKey, chain: list[x509.Certificate]) -> Path:
    """Write ``manifest.sig`` next to ``manifest.json`` in ``directory``; returns its path."""
    d = Path(directory)
    out = d / SIGNATURE
    out.write_bytes(signature_file((d / MANIFEST).read_bytes(), key, chain))
    return out


def load_key(path: str | Path, password: Optional[bytes] = None) -> ec.EllipticCurvePrivateKey:
    key = serialization.load_pem_private_key(Path(path).read_bytes(), password)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError(f"{path}: not an EC private key")
    return key


def load_chain(path: str | Path) -> list[x509.Certificate]:
    certs = x509.load_pem_x509_certificates(Path(path).read_bytes())
    if not certs:
        raise ValueError(f"{path}: no certificates")
    return certs


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``sign`` on ``endcap-model``'s sub-command parser."""
    s = sub.add_parser("sign", help="sign a model package (writes manifest.sig)")
    s.add_argument("package", help="package directory holding manifest.json")
    s.add_argument("--key", required=True, help="PEM private key of the model signer (P-256)")
    s.add_argument("--chain", required=True, help="PEM certificates: signer first, then intermediates, root last")
    s.add_argument("--key-password-env", default=None, help="environment variable holding the key's passphrase")
    s.set_defaults(func=cmd_sign)


def cmd_sign(args: argparse.Namespace) -> int:
    import os

    password = os.environ[args.key_password_env].encode() if args.key_password_env else None
    out = sign_package(args.package, load_key(args.key, password), load_chain(args.chain))
    print(out)
    return 0

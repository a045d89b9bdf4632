"""Fleet PKI for bundle signing: offline root -> intermediate -> bundle signer (ECDSA P-256).

Devices trust the root certificate only (the *keyring*). Bundles carry the intermediate in their CMS
signature. The signer needs key usage digitalSignature and the extended key usages codeSigning AND
emailProtection: RAUC 1.8 checks the CMS signer with the S/MIME purpose and refuses a code-signing-only
certificate. Private keys are written 0600; in production the root key lives offline (docs/noc.md).
"""
from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from .errors import PkiError

ROOT_CERT, ROOT_KEY = "root.cert.pem", "root.key.pem"
INT_CERT, INT_KEY = "intermediate.cert.pem", "intermediate.key.pem"
SIGNER_CERT, SIGNER_KEY = "signer.cert.pem", "signer.key.pem"
KEYRING = "keyring.pem"


@dataclass(frozen=True)
class Pki:
    """Paths of the PEM files of one fleet PKI (all in one directory for dev; root key offline in production)."""

    root_cert: Path
    root_key: Path
    intermediate_cert: Path
    intermediate_key: Path
    signer_cert: Path
    signer_key: Path
    keyring: Path


def _paths(d: Path) -> Pki:
    return Pki(d / ROOT_CERT, d / ROOT_KEY, d / INT_CERT, d / INT_KEY, d / SIGNER_CERT, d / SIGNER_KEY, d / KEYRING)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    data = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def _write_cert(path: Path, cert: x509.Certificate) -> None:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def load_cert(path: Path) -> x509.Certificate:
    """Load one PEM certificate. Raises: PkiError naming the file."""
    try:
        return x509.load_pem_x509_certificate(Path(path).read_bytes())
    except (OSError, ValueError) as e:
        raise PkiError(f"{path}: not a readable PEM certificate ({e})") from e


def load_key(path: Path) -> ec.EllipticCurvePrivateKey:
    """Load one unencrypted PEM EC private key. Raises: PkiError naming the file."""
    try:
        key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as e:
        raise PkiError(f"{path}: not a readable unencrypted PEM private key ({e})") from e
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise PkiError(f"{path}: not an EC private key")
    return key


def _name(org: str, cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, org), x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _ca_usage() -> x509.KeyUsage:
    return x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False, data_encipherment=False,
                         key_agreement=False, key_cert_sign=True, crl_sign=True, encipher_only=False, decipher_only=False)


def _issue(subject: x509.Name, pub, issuer_cert: x509.Certificate | None, issuer_key, days: int,
           extensions: list[tuple[x509.ExtensionType, bool]]) -> x509.Certificate:
    now = _now()
    issuer_name = subject if issuer_cert is None else issuer_cert.subject
    b = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer_name).public_key(pub)
         .serial_number(x509.random_serial_number())
         .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=days))
         .add_extension(x509.SubjectKeyIdentifier.from_public_key(pub), critical=False))
    aki_src = issuer_key.public_key()
    b = b.add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(aki_src), critical=False)
    for ext, critical in extensions:
        b = b.add_extension(ext, critical=critical)
    return b.sign(issuer_key, hashes.SHA256())


def _org_of(cert: x509.Certificate) -> str:
    attrs = cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    return str(attrs[0].value) if attrs else "Endcap"


def issue_signer(pki: Pki, dest_dir: Path, *, name: str, code_signing: bool = True, email_protection: bool = True,
                 days: int = 365) -> tuple[Path, Path]:
    """Issue a new bundle signer under the intermediate; write ``<name>.cert.pem`` / ``<name>.key.pem``.

    ``code_signing``/``email_protection`` False exist to prove that devices refuse such signers.
    Returns (cert path, key path). Raises: PkiError.
    """
    if not name or "/" in name or name.startswith("."):
        raise PkiError(f"signer name {name!r}: must be a plain file name")
    if days <= 0:
        raise PkiError(f"days {days}: must be positive")
    int_cert, int_key = load_cert(pki.intermediate_cert), load_key(pki.intermediate_key)
    dest_dir = Path(dest_dir)
    dest_dir.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    usages = [oid for oid, on in ((ExtendedKeyUsageOID.CODE_SIGNING, code_signing),
                                  (ExtendedKeyUsageOID.EMAIL_PROTECTION, email_protection)) if on]
    exts: list[tuple[x509.ExtensionType, bool]] = [
        (x509.BasicConstraints(ca=False, path_length=None), True),
        (x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False, data_encipherment=False,
                       key_agreement=False, key_cert_sign=False, crl_sign=False, encipher_only=False, decipher_only=False),
         True),
    ]
    if usages:
        exts.append((x509.ExtendedKeyUsage(usages), False))
    cert = _issue(_name(_org_of(int_cert), name), key.public_key(), int_cert, int_key, days, exts)
    cert_path, key_path = dest_dir / f"{name}.cert.pem", dest_dir / f"{name}.key.pem"
    _write_key(key_path, key)
    _write_cert(cert_path, cert)
    return cert_path, key_path


def create_pki(dest: Path, *, org: str = "Endcap dev fleet", days: int = 3650) -> Pki:
    """Create root (pathlen 1), intermediate (pathlen 0), one signer and the keyring in ``dest``.

    Refuses to overwrite an existing PKI. Raises: PkiError.
    """
    dest = Path(dest)
    if days <= 0:
        raise PkiError(f"days {days}: must be positive")
    pki = _paths(dest)
    if pki.root_cert.exists() or pki.root_key.exists():
        raise PkiError(f"{dest}: already holds a PKI (refusing to overwrite {ROOT_CERT})")
    dest.mkdir(parents=True, exist_ok=True)
    root_key = ec.generate_private_key(ec.SECP256R1())
    root = _issue(_name(org, f"{org} root CA"), root_key.public_key(), None, root_key, days,
                  [(x509.BasicConstraints(ca=True, path_length=1), True), (_ca_usage(), True)])
    int_key = ec.generate_private_key(ec.SECP256R1())
    inter = _issue(_name(org, f"{org} bundle intermediate CA"), int_key.public_key(), root, root_key, days,
                   [(x509.BasicConstraints(ca=True, path_length=0), True), (_ca_usage(), True)])
    _write_key(pki.root_key, root_key)
    _write_cert(pki.root_cert, root)
    _write_key(pki.intermediate_key, int_key)
    _write_cert(pki.intermediate_cert, inter)
    _write_cert(pki.keyring, root)
    issue_signer(pki, dest, name="signer", days=min(days, 365 * 2))
    return pki


def load_pki(directory: Path) -> Pki:
    """Open a PKI directory made by :func:`create_pki`. Certificates must exist; keys may be offline.

    Raises: PkiError naming the missing file.
    """
    pki = _paths(Path(directory))
    for p in (pki.root_cert, pki.intermediate_cert, pki.signer_cert, pki.keyring):
        if not p.is_file():
            raise PkiError(f"{p}: missing (not a PKI directory made by 'endcap-ota pki init')")
    return pki

"""The page's TLS certificate: the one installed at provisioning, or a self-signed one made at first start.

Self-signed: ECDSA P-256, SAN = hostname + bind address + configured IPs, valid 10 years, stored in the
state dir (key mode 0600) and reused on later starts. The SHA-256 fingerprint is what the page and the
HDMI service screen show so the technician can compare it with the browser's warning.
"""
from __future__ import annotations

import datetime as dt
import ipaddress
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ..core.atomic import atomic_write
from ..core.errors import ConfigError


def make_self_signed(hostname: str, ips: list[str], now: dt.datetime) -> tuple[bytes, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Endcap gateway")])
    san = [x509.DNSName(hostname)] + [x509.IPAddress(ipaddress.ip_address(i)) for i in dict.fromkeys(ips)]
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=3650))
            .add_extension(x509.SubjectAlternativeName(san), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=False,
                                         crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(key, hashes.SHA256()))
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def ensure_certificate(state_dir: Path, cert_file: str, key_file: str, hostname: str, ips: list[str]) -> tuple[Path, Path]:
    """Paths of the certificate and key to serve: the configured ones, or the state dir's (made if absent).

    Raises:
        ConfigError: a configured file is missing.
    """
    if cert_file:
        for label, f in (("cert_file", cert_file), ("key_file", key_file)):
            if not Path(f).is_file():
                raise ConfigError(f"maint.{label}: {f} does not exist", [f"maint.{label}: {f} does not exist"])
        return Path(cert_file), Path(key_file)
    cert, key = state_dir / "tls" / "cert.pem", state_dir / "tls" / "key.pem"
    if not (cert.is_file() and key.is_file()):
        c, k = make_self_signed(hostname, ips, dt.datetime.now(dt.timezone.utc))
        atomic_write(key, k, mode=0o600)
        atomic_write(cert, c, mode=0o644)
    return cert, key


def fingerprint(cert_path: Path) -> str:
    cert = x509.load_pem_x509_certificate(Path(cert_path).read_bytes())
    return ":".join(f"{b:02X}" for b in cert.fingerprint(hashes.SHA256()))

"""Check a RAUC bundle the way a device does, and a little stricter; return its facts or refuse it.

Order: structure (squashfs payload + CMS + 8-byte size trailer: ``truncated``/``unsigned``) -> ``rauc info``
with the device keyring (chain: ``foreign-ca``, ``key-usage``, ``expired``; plain payload: ``tampered``) ->
the signer policy (EKUs codeSigning AND emailProtection, key usage digitalSignature: ``key-usage``; OpenSSL
accepts a signer without any EKU, we do not) -> for verity bundles the dm-verity tree recomputed against the
signed root hash (``tampered``; a device without the check would only fail while reading the slot) ->
``format``, ``version`` (see version.py), ``compatible``. The security epoch is the ``security-epoch=N`` token of
the signed ``build`` field (see bundle.py).
"""
from __future__ import annotations

import hashlib
import json
import struct
import subprocess
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import pkcs7
from cryptography.x509.oid import ExtendedKeyUsageOID

from endcap.core import bundlever
from endcap.core.errors import IntegrityError

from . import verity
from .errors import BundleRefused, OtaError
from .version import parse_version

_CHUNK = 1 << 20
_RAUC_REASONS = (  # (stderr fragment, code) in priority order
    ("unable to get local issuer certificate", "foreign-ca"),
    ("self-signed certificate in certificate chain", "foreign-ca"),
    ("self signed certificate in certificate chain", "foreign-ca"),
    ("unable to get issuer certificate", "foreign-ca"),
    ("unsuitable certificate purpose", "key-usage"),
    ("unsupported certificate purpose", "key-usage"),
    ("certificate has expired", "expired"),
    ("certificate is not yet valid", "expired"),
    ("exceeds bundle size", "truncated"),
    ("verification failure", "tampered"),
    ("digest failure", "tampered"),
)


@dataclass(frozen=True)
class BundleInfo:
    """Facts of a verified bundle. ``sha256``/``size`` are of the whole file (what TUF lists)."""

    version: str
    compatible: str
    security_epoch: int
    fmt: str
    size: int
    sha256: str


def parse_security_epoch(build: str | None) -> int:
    """``security-epoch=N`` from a manifest ``build`` string; 0 when absent (bundles made elsewhere).

    The device's rule (``endcap.core.bundlever``): a token whose value is not digits is refused here, as the
    device would refuse it. Raises: BundleRefused(code="manifest")."""
    try:
        return bundlever.epoch_of_build(build)
    except IntegrityError as e:
        raise BundleRefused(str(e), code="manifest") from e


def _structure(path: Path, data_head: bytes, size: int, tail: bytes) -> tuple[int, int]:
    """Return (squashfs bytes_used, CMS size) or refuse as ``truncated``/``unsigned``/``format``."""
    if size < 96 or data_head[:4] != b"hsqs":
        raise BundleRefused(f"{path}: not a RAUC bundle (no squashfs payload)", code="format")
    bytes_used = struct.unpack_from("<Q", data_head, 40)[0]
    if size < bytes_used:
        raise BundleRefused(f"{path}: truncated ({size} bytes, payload alone needs {bytes_used})", code="truncated")
    cms_size = struct.unpack(">Q", tail)[0]
    if 0 < cms_size <= size - 8 - bytes_used:
        return bytes_used, cms_size
    padded = -(-bytes_used // verity.BLOCK) * verity.BLOCK
    if size <= padded + 8:
        raise BundleRefused(f"{path}: unsigned (payload without a CMS signature)", code="unsigned")
    raise BundleRefused(f"{path}: truncated (signature trailer missing or cut)", code="truncated")


def _rauc_info(path: Path, keyring: Path) -> tuple[dict, str]:
    proc = subprocess.run(["rauc", "info", f"--keyring={keyring}", "--output-format=json", str(path)],
                          capture_output=True, text=True, timeout=3600)
    if proc.returncode != 0:
        err = proc.stderr.strip()
        for fragment, code in _RAUC_REASONS:
            if fragment in err:
                break
        else:
            code = "invalid"
        reason = err.splitlines()[-1] if err else "rauc info failed"
        raise BundleRefused(f"{path}: {code}: {reason}", code=code)
    try:
        return json.loads(proc.stdout), proc.stderr
    except ValueError as e:
        raise OtaError(f"{path}: rauc info printed no JSON ({e})", code="rauc") from e


def check_signer_policy(certs: list[x509.Certificate], path: Path) -> x509.Certificate:
    """The end-entity signer must carry codeSigning+emailProtection EKUs and digitalSignature."""
    leaves = []
    for c in certs:
        try:
            if c.extensions.get_extension_for_class(x509.BasicConstraints).value.ca:
                continue
        except x509.ExtensionNotFound:
            pass
        leaves.append(c)
    if len(leaves) != 1:
        raise BundleRefused(f"{path}: key-usage: expected one signer certificate, found {len(leaves)}", code="key-usage")
    signer = leaves[0]
    try:
        ekus = set(signer.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
    except x509.ExtensionNotFound:
        ekus = set()
    missing = [n for oid, n in ((ExtendedKeyUsageOID.CODE_SIGNING, "codeSigning"),
                                (ExtendedKeyUsageOID.EMAIL_PROTECTION, "emailProtection")) if oid not in ekus]
    try:
        ds = signer.extensions.get_extension_for_class(x509.KeyUsage).value.digital_signature
    except x509.ExtensionNotFound:
        ds = False
    if not ds:
        missing.append("keyUsage digitalSignature")
    if missing:
        raise BundleRefused(f"{path}: key-usage: signer {signer.subject.rfc4514_string()} lacks {', '.join(missing)}",
                            code="key-usage")
    return signer


def _inline_manifest(cms: bytes, path: Path) -> bundlever.Manifest:
    # The signature was already verified by rauc; openssl only unwraps the signed content here.
    proc = subprocess.run(["openssl", "cms", "-verify", "-noverify", "-inform", "DER", "-binary"],
                          input=cms, capture_output=True, timeout=60)
    if proc.returncode != 0:
        raise BundleRefused(f"{path}: cannot read the signed manifest", code="invalid")
    try:
        return bundlever.parse_manifest(proc.stdout, f"{path}: signed manifest")
    except IntegrityError as e:
        raise BundleRefused(str(e), code="version" if e.code == "bad_version" else "manifest") from e


def _hash_file(path: Path, size: int, verity_params: tuple[int, bytes] | None) -> tuple[str, list[bytes]]:
    """sha256 of the whole file, and (for verity) the level-0 digests of the payload, in one read."""
    h, digests = hashlib.sha256(), []
    payload, salt = verity_params if verity_params else (0, b"")
    pos = 0
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
            if pos < payload:
                part = chunk[:payload - pos]
                digests += verity.level0((part[i:i + verity.BLOCK] for i in range(0, len(part), verity.BLOCK)), salt)
            pos += len(chunk)
    if pos != size:
        raise BundleRefused(f"{path}: changed while being read", code="truncated")
    return h.hexdigest(), digests


def verify_bundle(path: Path, keyring: Path, *, compatible: str | None = None) -> BundleInfo:
    """Verify ``path`` against the device keyring (PEM, the fleet root) and optionally a ``compatible``.

    Raises: BundleRefused with ``.code`` (see module docstring), OtaError(code="rauc") if rauc misbehaves.
    """
    path, keyring = Path(path).absolute(), Path(keyring)
    if not keyring.is_file():
        raise BundleRefused(f"{keyring}: keyring missing", code="input")
    if not path.is_file():
        raise BundleRefused(f"{path}: no such bundle file", code="input")
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(96)
        f.seek(max(size - 8, 0))
        tail = f.read(8)
        bytes_used, cms_size = _structure(path, head, size, tail if len(tail) == 8 else b"\0" * 8)
        f.seek(size - 8 - cms_size)
        cms = f.read(cms_size)
    info, log = _rauc_info(path, keyring)
    try:
        certs = pkcs7.load_der_pkcs7_certificates(cms)
    except ValueError as e:
        raise BundleRefused(f"{path}: unsigned: no readable CMS certificates ({e})", code="unsigned") from e
    check_signer_policy(certs, path)
    verity_params = None
    if "inline signature" in log:
        fmt = "verity"
        bundle = _inline_manifest(cms, path).bundle
        if bundle.get("format") != "verity":
            raise BundleRefused(f"{path}: format: inline signature but manifest format {bundle.get('format')!r}",
                                code="format")
        try:
            root, salt = bytes.fromhex(bundle["verity-hash"]), bytes.fromhex(bundle["verity-salt"])
            tree_size = int(bundle["verity-size"])
        except (KeyError, ValueError) as e:
            raise BundleRefused(f"{path}: format: verity parameters missing from manifest ({e})", code="format") from e
        payload = size - 8 - cms_size - tree_size
        if payload <= 0 or payload % verity.BLOCK:
            raise BundleRefused(f"{path}: truncated (verity payload of {payload} bytes)", code="truncated")
        verity_params = (payload, salt)
    elif "detached signature" in log:
        fmt = "plain"
    else:
        raise BundleRefused(f"{path}: format: rauc did not say which signature it verified", code="format")
    sha, digests = _hash_file(path, size, verity_params)
    if verity_params:
        got_root, tree = verity.tree_from_digests(digests, verity_params[1])
        with open(path, "rb") as f:
            f.seek(verity_params[0])
            stored = f.read(tree_size)
        if got_root != root or tree != stored:
            raise BundleRefused(f"{path}: tampered: payload does not match the signed verity root hash", code="tampered")
    version = str(info.get("version") or "")
    try:
        parse_version(version)
    except OtaError as e:
        raise BundleRefused(f"{path}: {e}", code="version") from e
    got_compatible = str(info.get("compatible") or "")
    if compatible is not None and got_compatible != compatible:
        raise BundleRefused(f"{path}: compatible {got_compatible!r} is not {compatible!r}", code="compatible")
    return BundleInfo(version=version, compatible=got_compatible, security_epoch=parse_security_epoch(info.get("build")),
                      fmt=fmt, size=size, sha256=sha)

"""TUF role keys on disk: ``<keys_dir>/<role>/<keyid>.pem`` (PKCS#8, 0600), retired ones in ``retired/``.

One ed25519 key per role (root: one per required signature). The keys directory lives outside the
served repository and is never committed; in production the root keys stay offline (docs/noc.md).
"""
from __future__ import annotations

import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from securesystemslib.signer import CryptoSigner

from endcap.core.atomic import atomic_write

from .errors import RepoError


def generate(keys_dir: Path, role: str) -> CryptoSigner:
    """Make and store a new key for ``role``; return its signer."""
    signer = CryptoSigner.generate_ed25519()
    d = Path(keys_dir) / role
    d.mkdir(parents=True, exist_ok=True, mode=0o700)
    atomic_write(d / f"{signer.public_key.keyid}.pem", signer.private_bytes, mode=0o600)
    return signer


def load(keys_dir: Path, role: str) -> dict[str, CryptoSigner]:
    """All stored keys of ``role`` by keyid (may be empty when the role's keys are offline)."""
    out: dict[str, CryptoSigner] = {}
    d = Path(keys_dir) / role
    if not d.is_dir():
        return out
    for p in sorted(d.glob("*.pem")):
        try:
            priv = serialization.load_pem_private_key(p.read_bytes(), password=None)
        except (OSError, ValueError, TypeError) as e:
            raise RepoError(f"{p}: unreadable key ({e})", code="keys") from e
        signer = CryptoSigner(priv)
        out[signer.public_key.keyid] = signer
    return out


def retire(keys_dir: Path, role: str, keyid: str) -> None:
    """Move a replaced key to ``retired/<role>-<keyid>.pem`` (kept for audit, never used again)."""
    src = Path(keys_dir) / role / f"{keyid}.pem"
    if src.exists():
        dst = Path(keys_dir) / "retired"
        dst.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.replace(src, dst / f"{role}-{keyid}.pem")

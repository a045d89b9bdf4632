"""Trust for ``endcap run`` (dev hosts only): a swtpm, a throwaway model-signing PKI, an enrolled TPM.

What the staging bench and the NOC do for a real gateway, done here with throwaway material so a
newcomer's gateway verifies models exactly as a store's does: the swtpm keeps its state under the
run root (``var/lib/endcap/swtpm``), the PKI is generated on first use into ``<root>/dev-pki``
(mode 0600, never committed, never reused outside this root), and the TPM is enrolled under that
root (idempotent). Real keys are made and kept as docs/trust.md says.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization

from ..core.paths import Paths
from ..trust.enrol import enrol
from ..trust.tpm import Tpm
from .swtpm import Swtpm, start_swtpm

COMPATIBLE = "endcap-dev"


@dataclass
class DevTrust:
    swtpm: Swtpm
    key_path: Path  # the signer's private key (PEM)
    chain_path: Path  # signer certificate, then root (PEM)

    @property
    def tcti(self) -> str:
        return self.swtpm.tcti

    def stop(self) -> None:
        self.swtpm.stop()


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def _dev_pki(directory: Path):
    from endcap_models import sign  # the NOC's tool, used here as the NOC would

    key_path, chain_path = directory / "signer.key.pem", directory / "chain.pem"
    if key_path.exists() and chain_path.exists():
        chain = sign.load_chain(chain_path)
        return key_path, chain_path, chain[-1]
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    root_key, root = sign.make_root(cn="Endcap DEV model-signing root (throwaway)")
    signer_key, signer = sign.make_signer(root_key, root, cn="Endcap DEV model signer (throwaway)")
    _write_private(key_path, signer_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                      serialization.NoEncryption()))
    chain_path.write_bytes(b"".join(c.public_bytes(serialization.Encoding.PEM) for c in (signer, root)))
    return key_path, chain_path, root


def prepare(paths: Paths) -> DevTrust:
    """Start the swtpm, make or reuse the throwaway PKI, and enrol the TPM under its root."""
    from endcap_models import sign

    tpm = start_swtpm(state_dir=paths.state_dir / "swtpm")
    try:
        key_path, chain_path, root = _dev_pki(paths.root / "dev-pki")
        with Tpm(tpm.tcti) as t:
            enrol(t, sign.root_key_hash(root))
    except BaseException:
        tpm.stop()
        raise
    return DevTrust(tpm, key_path, chain_path)

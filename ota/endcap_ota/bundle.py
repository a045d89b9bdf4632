"""Build a signed RAUC bundle from a rootfs image with Debian's ``rauc`` 1.8 CLI.

Manifest: ``[update] compatible, version, build``; ``[bundle] format=verity|plain``;
``[image.rootfs] filename=rootfs.ext4``. The security epoch travels in the signed ``build`` field as the
token ``security-epoch=N`` (``build=20261128T132100Z security-epoch=N``): RAUC 1.8 parses but drops
``[meta.*]`` sections when it writes the bundle's manifest, so they never reach ``rauc info``.
``plain`` bundles only with ``allow_plain=True`` (hosts without device-mapper, e.g. integration tests).
The bundle is written to a temp name next to ``out`` and renamed into place.
"""
from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

from .errors import BundleRefused, OtaError
from .pki import Pki
from .version import check_compatible, parse_version

FORMATS = ("verity", "plain")


def render_manifest(*, version: str, compatible: str, build: str, fmt: str) -> str:
    """The manifest text RAUC signs (pure)."""
    return (f"[update]\ncompatible={compatible}\nversion={version}\nbuild={build}\n\n"
            f"[bundle]\nformat={fmt}\n\n[image.rootfs]\nfilename=rootfs.ext4\n")


def build_string(security_epoch: int, now: dt.datetime | None = None) -> str:
    """``<UTC timestamp> security-epoch=N`` (pure when ``now`` is given)."""
    now = now or dt.datetime.now(dt.timezone.utc)
    return f"{now.strftime('%Y%m%dT%H%M%SZ')} security-epoch={security_epoch}"


def _stage_rootfs(rootfs: Path, dest: Path) -> None:
    try:
        os.link(rootfs, dest)  # same filesystem: no copy of a multi-GB image
    except OSError:
        shutil.copyfile(rootfs, dest)


def build_bundle(rootfs: Path, out: Path, *, version: str, compatible: str, pki: Pki | None = None,
                 signer_cert: Path | None = None, signer_key: Path | None = None, intermediates: Sequence[Path] = (),
                 fmt: str = "verity", security_epoch: int = 0, allow_plain: bool = False) -> Path:
    """Build and sign ``out`` from the filesystem image ``rootfs``; return ``out``.

    The signer is ``signer_cert``/``signer_key`` if given, else the PKI's signer; ``intermediates``
    default to the PKI's intermediate. Raises: BundleRefused (bad input: code ``input``, ``format``,
    ``version``, ``compatible``), OtaError(code="rauc") when ``rauc bundle`` fails.
    """
    rootfs, out = Path(rootfs), Path(out)
    if fmt not in FORMATS:
        raise BundleRefused(f"format {fmt!r}: must be one of {', '.join(FORMATS)}", code="format")
    if fmt == "plain" and not allow_plain:
        raise BundleRefused("format 'plain': refused unless allowed (only for hosts without device-mapper)",
                            code="format")
    try:
        parse_version(version)
        check_compatible(compatible)
    except OtaError as e:
        raise BundleRefused(str(e), code=e.code) from e
    if not isinstance(security_epoch, int) or security_epoch < 0:
        raise BundleRefused(f"security_epoch {security_epoch!r}: must be an integer >= 0", code="input")
    if not rootfs.is_file() or rootfs.stat().st_size == 0:
        raise BundleRefused(f"{rootfs}: rootfs image missing or empty", code="input")
    cert = Path(signer_cert) if signer_cert else (pki.signer_cert if pki else None)
    key = Path(signer_key) if signer_key else (pki.signer_key if pki else None)
    if cert is None or key is None:
        raise BundleRefused("no signer: give a PKI or signer_cert and signer_key", code="input")
    for p in (cert, key):
        if not p.is_file():
            raise BundleRefused(f"{p}: signer file missing", code="input")
    inters = [Path(p) for p in intermediates] or ([pki.intermediate_cert] if pki else [])
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".bundle-", dir=out.parent) as tmp:
        content = Path(tmp) / "content"
        content.mkdir()
        _stage_rootfs(rootfs, content / "rootfs.ext4")
        (content / "manifest.raucm").write_text(
            render_manifest(version=version, compatible=compatible, build=build_string(security_epoch), fmt=fmt))
        tmp_out = Path(tmp) / "out.raucb"
        cmd = ["rauc", "bundle", f"--cert={cert}", f"--key={key}"]
        cmd += [f"--intermediate={p}" for p in inters]
        cmd += [str(content), str(tmp_out)]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=3600)
        if proc.returncode != 0:
            reason = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            raise OtaError(f"{rootfs}: rauc bundle failed: {reason}", code="rauc")
        os.replace(tmp_out, out)
    return out

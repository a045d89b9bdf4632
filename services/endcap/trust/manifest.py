"""Model package manifests and their verification: what a package claims, and whether its files agree.

A model package is a directory holding ``manifest.json`` and exactly the files it lists (flat names,
no sub-directories). The manifest names the model (``name``, ``kind``, ``version``,
``security_epoch``, ``compatible``), says where it came from (``created``, ``data_range``), what it
scored (``metrics``), how its scores map to probabilities (``calibration``), its hyper-parameters
(``params``), and every file with its size and SHA-256.

Invariants of ``verify_package`` (every failure is an ``IntegrityError`` naming the package and file):
- the manifest decodes into ``Manifest`` exactly (unknown keys, wrong types, another ``format`` are
  refused) and its ``compatible`` is the one the caller expects;
- every listed name is a plain file name (no ``/``, ``..``, leading dot, or the reserved names) and
  is listed once; the directory holds exactly the listed files plus ``manifest.json`` and, optionally,
  the reserved ``manifest.sig`` (checked by ``endcap.trust.signature`` when a package is installed
  through ``endcap.trust.store``; this function checks files only);
- each file is a regular file (never followed through a symlink), of the listed size, whose SHA-256,
  computed while streaming it, matches; the verified bytes are returned, so what the caller loads is
  what was hashed (no time-of-check/time-of-use gap).
Every ``IntegrityError`` carries a ``code`` naming the reason (``bad_manifest``, ``bad_name``,
``missing_file``, ``extra_file``, ``not_regular``, ``too_large``, ``size_mismatch``, ``truncated``,
``tampered``, ``wrong_hardware``). Nothing here reads at import time; verification is read-only.
"""
from __future__ import annotations

import hashlib
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

from ..core.errors import IntegrityError

FORMAT = 1
MANIFEST = "manifest.json"
SIGNATURE = "manifest.sig"  # the ECDSA signature; ``verify_package`` allows it, ``endcap.trust.store`` requires it
RESERVED = frozenset({MANIFEST, SIGNATURE})
MAX_MANIFEST_BYTES = 1 << 20
MAX_FILE_BYTES = 256 << 20
CHUNK = 1 << 20
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


class FileEntry(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    path: str
    size: int
    sha256: str


class Manifest(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """The package's claims. ``format`` changes only with an incompatible change of this struct."""

    format: int = FORMAT
    name: str
    kind: str
    version: str
    security_epoch: int
    compatible: str
    created: str  # ISO 8601 UTC
    data_range: dict[str, Any] = {}
    metrics: dict[str, Any] = {}
    calibration: dict[str, Any] = {}
    params: dict[str, Any] = {}
    files: list[FileEntry] = []


@dataclass(frozen=True)
class VerifiedPackage:
    directory: Path
    manifest: Manifest
    digest: str  # SHA-256 of manifest.json as read: identifies this exact package
    blobs: dict[str, bytes]  # file name → the verified bytes


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def encode_manifest(manifest: Manifest) -> bytes:
    """Canonical JSON (sorted keys, indented) so the same manifest always hashes the same."""
    import json

    return (json.dumps(msgspec.to_builtins(manifest), sort_keys=True, indent=1) + "\n").encode()


def decode_manifest(data: bytes, where: str = MANIFEST) -> Manifest:
    """Raises IntegrityError if ``data`` is not exactly a valid manifest."""
    try:
        man = msgspec.json.decode(data, type=Manifest, strict=True)
    except (msgspec.DecodeError, msgspec.ValidationError) as e:
        raise IntegrityError(f"{where}: not a valid manifest: {e}", code="bad_manifest") from e
    _check_fields(man, where)
    return man


def _check_fields(man: Manifest, where: str) -> None:
    if man.format != FORMAT:
        raise IntegrityError(f"{where}: manifest format {man.format} is not {FORMAT}", code="bad_manifest")
    for key in ("name", "kind", "version", "compatible", "created"):
        if not getattr(man, key).strip():
            raise IntegrityError(f"{where}: {key} is empty", code="bad_manifest")
    if man.security_epoch < 0:
        raise IntegrityError(f"{where}: security_epoch {man.security_epoch} is negative", code="bad_manifest")
    seen: set[str] = set()
    for f in man.files:
        if not _NAME.match(f.path) or f.path in RESERVED:
            raise IntegrityError(f"{where}: file name {f.path!r} is not allowed (plain names only, no paths)", code="bad_name")
        if f.path in seen:
            raise IntegrityError(f"{where}: file {f.path!r} is listed twice", code="bad_manifest")
        seen.add(f.path)
        if not 0 <= f.size <= MAX_FILE_BYTES:
            raise IntegrityError(f"{where}: file {f.path!r} size {f.size} is out of range", code="too_large")
        if not _HEX64.match(f.sha256):
            raise IntegrityError(f"{where}: file {f.path!r} sha256 is not 64 lowercase hex digits", code="bad_manifest")


def _read_regular(path: Path, limit: int, what: str) -> bytes:
    """Read a regular file without following a symlink, refusing more than ``limit`` bytes; hash-free."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except FileNotFoundError as e:
        raise IntegrityError(f"{what}: missing", code="missing_file") from e
    except OSError as e:
        raise IntegrityError(f"{what}: cannot open ({e.strerror}); symlinks are refused", code="not_regular") from e
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            raise IntegrityError(f"{what}: not a regular file", code="not_regular")
        data = f.read(limit + 1)
    if len(data) > limit:
        raise IntegrityError(f"{what}: larger than {limit} bytes", code="too_large")
    return data


def _read_verified(path: Path, entry: FileEntry, what: str) -> bytes:
    """Stream the file in chunks, hashing as it comes; refuse any size or hash mismatch."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except FileNotFoundError as e:
        raise IntegrityError(f"{what}: listed in the manifest but missing", code="missing_file") from e
    except OSError as e:
        raise IntegrityError(f"{what}: cannot open ({e.strerror}); symlinks are refused", code="not_regular") from e
    h = hashlib.sha256()
    parts: list[bytes] = []
    got = 0
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            raise IntegrityError(f"{what}: not a regular file", code="not_regular")
        while True:
            chunk = f.read(min(CHUNK, entry.size + 1 - got))
            if not chunk:
                break
            got += len(chunk)
            if got > entry.size:
                raise IntegrityError(f"{what}: larger than the {entry.size} bytes the manifest lists", code="size_mismatch")
            h.update(chunk)
            parts.append(chunk)
    if got != entry.size:
        raise IntegrityError(f"{what}: {got} bytes, the manifest lists {entry.size} (truncated?)", code="truncated")
    if h.hexdigest() != entry.sha256:
        raise IntegrityError(f"{what}: SHA-256 does not match the manifest (tampered or corrupt)", code="tampered")
    return b"".join(parts)


def verify_package(directory: str | Path, *, compatible: str | None = None) -> VerifiedPackage:
    """Verify a package directory and return its manifest and verified file contents.

    Raises:
        IntegrityError: anything about the package is not exactly as its manifest says (see module doc).
    """
    d = Path(directory)
    where = f"model package {d}"
    if not d.is_dir():
        raise IntegrityError(f"{where}: not a directory", code="missing_file")
    raw = _read_regular(d / MANIFEST, MAX_MANIFEST_BYTES, f"{where}: {MANIFEST}")
    man = decode_manifest(raw, f"{where}: {MANIFEST}")
    if compatible is not None and man.compatible != compatible:
        raise IntegrityError(f"{where}: compatible {man.compatible!r} is not {compatible!r} (wrong kind of model)", code="wrong_hardware")
    listed = {f.path for f in man.files}
    present = {p.name for p in d.iterdir()}
    extra = sorted(present - listed - RESERVED)
    if extra:
        raise IntegrityError(f"{where}: files not in the manifest: {', '.join(extra)}", code="extra_file")
    blobs = {f.path: _read_verified(d / f.path, f, f"{where}: {f.path}") for f in man.files}
    return VerifiedPackage(d, man, sha256_hex(raw), blobs)


def file_entries(files: dict[str, bytes]) -> list[FileEntry]:
    """Manifest entries for ``files`` (name → bytes), in name order."""
    return [FileEntry(name, len(data), sha256_hex(data)) for name, data in sorted(files.items())]

"""Bundle upload: streamed to a file in the state dir in chunks, never held whole in memory.

The first bytes must be a squashfs superblock magic (``hsqs``: every RAUC bundle starts with one) or
the upload is refused before anything is written; the size limit is enforced on the declared length
and again on the bytes actually read. Verification proper (signature, compatible, version) is the
updater's, through RAUC. Each upload gets its own random name; once the updater accepted it, the
updater owns the file (and removes it after installing); the page removes it only when the updater
answered with a refusal. Leftovers (a ``.part`` cut off by a kill or power loss, a bundle never installed)
are removed by the start-up sweep in sweep.py, which relies on the names used here.
"""
from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import BinaryIO

from ..core.errors import EndcapError

MAGIC = b"hsqs"
CHUNK = 1 << 20


class UploadError(EndcapError):
    def __init__(self, message: str, status: int, code: str) -> None:
        super().__init__(message, code=code)
        self.status = status


def receive(stream: BinaryIO, length: int | None, directory: Path, limit: int) -> Path:
    """Write the body to ``directory/bundle-<random>.raucb``; raises UploadError (413/411/415/400)."""
    if length is None:
        raise UploadError("upload: the request has no Content-Length", 411, "no_length")
    if length > limit:
        raise UploadError(f"upload: {length} bytes is over the limit of {limit} bytes", 413, "too_large")
    head = stream.read(len(MAGIC))
    while len(head) < len(MAGIC):
        more = stream.read(len(MAGIC) - len(head))
        if not more:
            break
        head += more
    if head != MAGIC:
        raise UploadError("upload: this is not a RAUC bundle (no squashfs header at the start)", 415, "not_bundle")
    directory.mkdir(parents=True, exist_ok=True)
    # a fresh name per upload; nothing else in the directory is touched (the updater may be installing
    # an earlier upload from here, and deletes it itself when it is done)
    final = directory / f"bundle-{secrets.token_hex(16)}.raucb"
    part = final.with_suffix(".part")
    total = len(head)
    try:
        fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o640)
        with os.fdopen(fd, "wb") as f:
            f.write(head)
            while True:
                chunk = stream.read(CHUNK)
                if not chunk:
                    break
                total += len(chunk)
                if total > limit:
                    raise UploadError(f"upload: more than the limit of {limit} bytes", 413, "too_large")
                f.write(chunk)
            f.flush()
            os.fsync(f.fileno())
        if total != length:
            raise UploadError(f"upload: got {total} of {length} bytes (cut off)", 400, "truncated")
        os.replace(part, final)
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    return final

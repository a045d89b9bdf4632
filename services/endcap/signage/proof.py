"""Proof of play: what each screen really showed, after Xibo's records, appended to a local log.

One JSON object per line in ``<dir>/proof.jsonl``::

    {"rid", "type": "loop"|"offer"|"fallback"|"test", "display", "item", "offer_id", "from", "to",
     "duration_s", "received_at"}

``test`` is a maintenance test card (offer id ``maint-test-…``): not proof of play of any real offer.

``from``/``to`` are the page's own epoch seconds for when the item went on and off screen; ``rid``
is the page's id for the record (a page resends a batch whose reply it lost; the web layer drops
ids it has already seen). ``fallback`` means the item ``item`` was due but the built-in fallback
played instead (its creative was missing or broken).

Invariants: records are only ever appended; each batch is one ``write`` on an ``O_APPEND`` file
followed by ``fsync``, so a batch is on disk before the page is told it was received. A power cut
can leave at most a torn last line: on open a missing final newline is added, and ``read`` skips
lines that do not parse. At ``rotate_bytes`` the file is renamed to
``proof-<UTC time>-<rotation number>.jsonl`` and a new one begun; only the newest ``keep_files`` rotated files
are kept (the uplink ships them; the oldest go first when the partition is small).
"""
from __future__ import annotations

import json
import logging
import os
import threading
import time
from pathlib import Path
from typing import Any, Iterable

from ..core.atomic import fsync_dir

log = logging.getLogger(__name__)

CURRENT = "proof.jsonl"


class ProofLog:
    def __init__(self, directory: str | Path, rotate_bytes: int, keep_files: int) -> None:
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.rotate_bytes = rotate_bytes
        self.keep_files = keep_files
        self.records = 0
        self._lock = threading.Lock()
        self._fd = self._open()

    def _open(self) -> int:
        path = self.dir / CURRENT
        created = not path.exists()
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        size = os.fstat(fd).st_size
        if size:
            with open(path, "rb") as f:
                f.seek(size - 1)
                if f.read(1) != b"\n":  # torn by a crash mid-write: end that line so ours parse
                    _write_all(fd, b"\n")
                    os.fsync(fd)
        if created:
            fsync_dir(self.dir)
        return fd

    def append(self, records: Iterable[dict[str, Any]]) -> int:
        """Append records (one write, then fsync); returns how many. Rotates when the file is full."""
        lines = [json.dumps(r, separators=(",", ":"), sort_keys=True, ensure_ascii=True) + "\n" for r in records]
        if not lines:
            return 0
        data = "".join(lines).encode()
        with self._lock:
            _write_all(self._fd, data)
            os.fsync(self._fd)
            self.records += len(lines)
            if os.fstat(self._fd).st_size >= self.rotate_bytes:
                self._rotate()
        return len(lines)

    def _rotate(self) -> None:
        os.close(self._fd)
        rotated = self.rotated()
        seq = _seq(rotated[-1]) + 1 if rotated else 1
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        os.replace(self.dir / CURRENT, self.dir / f"proof-{stamp}-{seq:06d}.jsonl")
        fsync_dir(self.dir)
        self._fd = self._open()
        for old in self.rotated()[:-self.keep_files]:
            old.unlink()
            log.info("proof of play: dropped %s (keeping %d rotated files)", old.name, self.keep_files)

    def rotated(self) -> list[Path]:
        """Rotated files, oldest first (by their rotation number, whatever the clock did)."""
        return sorted(self.dir.glob("proof-*-*.jsonl"), key=_seq)

    def files(self) -> list[Path]:
        """Every proof file, oldest first, the current one last."""
        return self.rotated() + [self.dir / CURRENT]

    def close(self) -> None:
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1


def _seq(path: Path) -> int:
    tail = path.stem.rpartition("-")[2]
    return int(tail) if tail.isdigit() else 0


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def read(path: str | Path) -> list[dict[str, Any]]:
    """The records of one proof file; a torn or garbled line is skipped, never fatal."""
    out = []
    with open(path, "rb") as f:
        for line in f:
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if isinstance(rec, dict):
                out.append(rec)
    return out

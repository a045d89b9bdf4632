"""The audit log: JSON lines (UTC time, user, remote address, action, target, result) in size-capped segments.

Each record is appended with ``O_APPEND`` and one ``write`` call, then fsynced; a record is never rewritten.
When the current file (``audit.jsonl``) would pass ``max_bytes``, it becomes ``audit.jsonl.1`` (the older
ones move up to ``.2`` … ``.<keep>``, the oldest is dropped), so the log takes at most about
``(keep + 1) × max_bytes``. Values are plain strings, so a hostile form value cannot forge a line (JSON
escapes newlines). ``tail`` reads backwards from the end, never a whole file.

``RefusalLimit`` (pure) caps how many records requests without a session may cause per minute (failed
logins, cross-site refusals): an unauthenticated flood cannot bury the log; what it drops is counted in
the next record it lets through.
"""
from __future__ import annotations

import json
import os
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Optional

MAX_FIELD = 200
BLOCK = 64 * 1024


class RefusalLimit:
    """A token bucket: ``per_min`` records a minute on average, bursts up to ``per_min``."""

    def __init__(self, per_min: int) -> None:
        self.rate, self.capacity = per_min / 60.0, float(per_min)
        self.tokens, self.at, self.dropped = float(per_min), None, 0

    def allow(self, now: float) -> tuple[bool, int]:
        """(record it?, how many were dropped before it); the drop count resets once reported."""
        if self.at is not None:
            self.tokens = min(self.capacity, self.tokens + max(0.0, now - self.at) * self.rate)
        self.at = now
        if self.tokens < 1.0:
            self.dropped += 1
            return False, 0
        self.tokens -= 1.0
        dropped, self.dropped = self.dropped, 0
        return True, dropped


def _last_lines(path: Path, n: int) -> list[bytes]:
    """Up to the last ``n`` complete lines of ``path``, oldest first, read backwards in blocks."""
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        return []
    with f:
        end = f.seek(0, os.SEEK_END)
        pos, data = end, b""
        while pos > 0 and data.count(b"\n") <= n:
            step = min(BLOCK, pos)
            pos -= step
            f.seek(pos)
            data = f.read(step) + data
    lines = data.splitlines()
    if pos > 0 and lines:
        lines = lines[1:]  # the first one may be cut
    return lines[-n:] if n else []


class AuditLog:
    def __init__(self, path: str | Path, *, max_bytes: int = 1 << 20, keep: int = 4) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.max_bytes, self.keep = max_bytes, keep
        self._lock = threading.Lock()

    def segment(self, i: int) -> Path:
        return self.path if i == 0 else self.path.with_name(f"{self.path.name}.{i}")

    def _rotate(self) -> None:
        for i in range(self.keep, 0, -1):
            try:
                os.replace(self.segment(i - 1), self.segment(i))  # .keep is overwritten: the oldest goes
            except FileNotFoundError:
                continue

    def record(self, *, user: str, remote: str, action: str, target: str = "", result: str, now: float,
               note: Optional[str] = None) -> None:
        rec = {"time": datetime.fromtimestamp(now, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
               "user": str(user)[:MAX_FIELD], "remote": str(remote)[:MAX_FIELD], "action": str(action)[:MAX_FIELD],
               "target": str(target)[:MAX_FIELD], "result": str(result)[:MAX_FIELD]}
        if note:
            rec["note"] = str(note)[:MAX_FIELD]
        line = (json.dumps(rec, ensure_ascii=True) + "\n").encode()
        with self._lock:
            try:
                size = self.path.stat().st_size
            except FileNotFoundError:
                size = 0
            if size and size + len(line) > self.max_bytes:
                self._rotate()
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                os.write(fd, line)
                os.fsync(fd)
            finally:
                os.close(fd)

    def tail(self, n: int = 200) -> list[dict]:
        """The newest ``n`` records, newest first (lines that do not parse are skipped)."""
        out: list[dict] = []
        for i in range(self.keep + 1):
            for raw in reversed(_last_lines(self.segment(i), n - len(out))):
                try:
                    out.append(json.loads(raw))
                except ValueError:
                    continue
            if len(out) >= n:
                break
        return out[:n]

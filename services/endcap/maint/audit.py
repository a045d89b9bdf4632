"""The audit log: append-only JSON lines (UTC time, user, remote address, action, target, result).

Opened with ``O_APPEND`` for every record and written with one ``write`` call, then fsynced; it is never
rewritten or truncated by the service. Values are plain strings, so a hostile form value cannot forge
a line (JSON escapes newlines).
"""
from __future__ import annotations

import json
import os
import threading
from datetime import datetime, timezone
from pathlib import Path

MAX_FIELD = 200


class AuditLog:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()

    def record(self, *, user: str, remote: str, action: str, target: str = "", result: str, now: float) -> None:
        rec = {"time": datetime.fromtimestamp(now, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
               "user": str(user)[:MAX_FIELD], "remote": str(remote)[:MAX_FIELD], "action": str(action)[:MAX_FIELD],
               "target": str(target)[:MAX_FIELD], "result": str(result)[:MAX_FIELD]}
        line = (json.dumps(rec, ensure_ascii=True) + "\n").encode()
        with self._lock:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                os.write(fd, line)
                os.fsync(fd)
            finally:
                os.close(fd)

    def tail(self, n: int = 200) -> list[dict]:
        """The newest ``n`` records, newest first (lines that do not parse are skipped)."""
        try:
            lines = self.path.read_bytes().splitlines()[-n:]
        except FileNotFoundError:
            return []
        out = []
        for raw in reversed(lines):
            try:
                out.append(json.loads(raw))
            except ValueError:
                continue
        return out

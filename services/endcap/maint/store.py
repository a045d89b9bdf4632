"""Server-side sessions and login back-off, in ``<state>/maint.db`` (SQLite via ``endcap.core.sqlite``).

Sessions: a random 256-bit id in the cookie; only its SHA-256 is stored, so a copy of the database opens
no session. A session ends after ``idle_s`` without use or ``absolute_s`` after login, on logout, and
for every session of a user when that user's password changes. Each carries its CSRF token and the
time the password was last entered (for re-authentication).

Back-off: failures per key (``user:<name>``, ``addr:<ip>``) persist across restarts; ``delay`` is pure.
"""
from __future__ import annotations

import hashlib
import secrets
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from ..core.sqlite import open_db, transaction

SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (
  id_sha256 TEXT PRIMARY KEY, user TEXT NOT NULL, csrf TEXT NOT NULL, created REAL NOT NULL,
  last_seen REAL NOT NULL, auth_at REAL NOT NULL, must_change INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS failures (key TEXT PRIMARY KEY, count INTEGER NOT NULL, last REAL NOT NULL);
"""


@dataclass(frozen=True)
class Session:
    id_sha256: str
    user: str
    csrf: str
    created: float
    last_seen: float
    auth_at: float
    must_change: bool


def _h(sid: str) -> str:
    return hashlib.sha256(sid.encode()).hexdigest()


def delay(failures: int, *, base_s: float, max_s: float, free: int) -> float:
    """Seconds to wait after ``failures`` consecutive failures: 0 for the first ``free``, then doubling."""
    if failures < free:
        return 0.0
    return min(max_s, base_s * (2 ** min(failures - free, 40)))


class Store:
    def __init__(self, path: str | Path, *, idle_s: float, absolute_s: float) -> None:
        self.path = Path(path)
        open_db(self.path, schema=SCHEMA).close()
        self.idle_s, self.absolute_s = idle_s, absolute_s
        self._local = threading.local()  # sqlite3 connections belong to their thread
        self._lock = threading.Lock()  # one writer at a time within this process

    @property
    def db(self):
        db = getattr(self._local, "db", None)
        if db is None:
            db = self._local.db = open_db(self.path)
        return db

    # --- sessions ------------------------------------------------------------------------------
    def create(self, user: str, now: float, *, must_change: bool = False) -> tuple[str, Session]:
        sid = secrets.token_urlsafe(32)  # 256 bits
        s = Session(_h(sid), user, secrets.token_urlsafe(32), now, now, now, must_change)
        with self._lock:
            # expired sessions nobody presents again are dropped here
            self.db.execute("DELETE FROM sessions WHERE last_seen < ? OR created < ?", (now - self.idle_s, now - self.absolute_s))
            self.db.execute("INSERT INTO sessions VALUES (?,?,?,?,?,?,?)",
                            (s.id_sha256, s.user, s.csrf, s.created, s.last_seen, s.auth_at, int(must_change)))
        return sid, s

    def get(self, sid: str, now: float) -> Optional[Session]:
        """The live session for cookie value ``sid`` (touching it), or None; expired ones are deleted."""
        if not sid or len(sid) > 128:
            return None
        key = _h(sid)
        with self._lock:
            row = self.db.execute("SELECT * FROM sessions WHERE id_sha256 = ?", (key,)).fetchone()
            if row is None:
                return None
            s = Session(row[0], row[1], row[2], row[3], row[4], row[5], bool(row[6]))
            if now - s.last_seen > self.idle_s or now - s.created > self.absolute_s:
                self.db.execute("DELETE FROM sessions WHERE id_sha256 = ?", (key,))
                return None
            self.db.execute("UPDATE sessions SET last_seen = ? WHERE id_sha256 = ?", (now, key))
        return Session(s.id_sha256, s.user, s.csrf, s.created, now, s.auth_at, s.must_change)

    def reauthenticated(self, s: Session, now: float) -> None:
        with self._lock:
            self.db.execute("UPDATE sessions SET auth_at = ? WHERE id_sha256 = ?", (now, s.id_sha256))

    def revoke(self, s: Session) -> None:
        with self._lock:
            self.db.execute("DELETE FROM sessions WHERE id_sha256 = ?", (s.id_sha256,))

    def revoke_user(self, user: str) -> int:
        with self._lock:
            return self.db.execute("DELETE FROM sessions WHERE user = ?", (user,)).rowcount

    def count(self) -> int:
        with self._lock:
            return self.db.execute("SELECT count(*) FROM sessions").fetchone()[0]

    # --- back-off ------------------------------------------------------------------------------
    def failures(self, key: str) -> tuple[int, float]:
        with self._lock:
            row = self.db.execute("SELECT count, last FROM failures WHERE key = ?", (key,)).fetchone()
        return (row[0], row[1]) if row else (0, 0.0)

    def fail(self, keys: list[str], now: float) -> None:
        with self._lock, transaction(self.db):
            for k in keys:
                self.db.execute("INSERT INTO failures VALUES (?, 1, ?) ON CONFLICT(key) DO UPDATE "
                                "SET count = count + 1, last = excluded.last", (k, now))

    def clear(self, keys: list[str]) -> None:
        with self._lock, transaction(self.db):
            for k in keys:
                self.db.execute("DELETE FROM failures WHERE key = ?", (k,))

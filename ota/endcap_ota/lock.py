"""One writer at a time on a fleet repository: an exclusive ``fcntl.flock`` on ``<repo_dir>/.lock``.

The kernel drops a flock when its holder exits, however it exits (kill -9 included), so a lock file left
behind by a dead writer never blocks; the file itself is never deleted (deleting a flock file races with
a writer that has just opened it). The holder writes its PID into the file so a waiting writer can name
it. The wait is bounded: it polls a non-blocking flock until ``timeout_s`` and then raises ``RepoError``
(code ``locked``) naming the file and the holder. The file sits outside ``metadata/`` and ``targets/``, so
it is never a TUF target; it is created mode 0640 so a web server running as another user cannot read it.
"""
from __future__ import annotations

import errno
import fcntl
import os
import time
from collections.abc import Callable
from pathlib import Path

from .errors import RepoError

LOCK_NAME = ".lock"
DEFAULT_TIMEOUT_S = 300.0


def holder_pid(path: Path) -> int | None:
    """The PID recorded in the lock file (None when empty, unreadable or not a number)."""
    try:
        text = Path(path).read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


class RepoLock:
    """Context manager; re-entrant within one object (nested ``with`` only counts)."""

    def __init__(self, path: Path, *, timeout_s: float = DEFAULT_TIMEOUT_S,
                 on_wait: Callable[[Path, int | None], None] | None = None) -> None:
        if timeout_s < 0:
            raise RepoError(f"lock timeout {timeout_s:g}: must be >= 0 seconds", code="input")
        self.path, self.timeout_s, self.on_wait = Path(path), timeout_s, on_wait
        self._fd: int | None = None
        self._depth = 0

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> None:
        if self._depth:
            self._depth += 1
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o640)
        try:
            self._wait(fd)
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        except BaseException:
            os.close(fd)  # closing drops the flock too
            raise
        self._fd, self._depth = fd, 1

    def _wait(self, fd: int) -> None:
        deadline = time.monotonic() + self.timeout_s
        told = False
        pause = 0.01
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except OSError as e:
                if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                    raise RepoError(f"{self.path}: cannot lock ({e.strerror})", code="locked") from e
            pid = holder_pid(self.path)
            if not told and self.on_wait is not None:
                self.on_wait(self.path, pid)
                told = True
            left = deadline - time.monotonic()
            if left <= 0:
                who = f"PID {pid}" if pid else "an unknown process"
                raise RepoError(f"{self.path}: held by {who}; gave up after {self.timeout_s:g} s (another "
                                "endcap-ota writer is running on this repository)", code="locked")
            time.sleep(min(pause, left))  # flock has no timed wait; poll, backing off to 0.2 s
            pause = min(pause * 2, 0.2)

    def release(self) -> None:
        if not self._depth:
            return
        self._depth -= 1
        if self._depth:
            return
        fd, self._fd = self._fd, None
        try:
            os.ftruncate(fd, 0)  # the PID of a writer that finished would only mislead
        finally:
            os.close(fd)  # releases the flock

    def __enter__(self) -> "RepoLock":
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

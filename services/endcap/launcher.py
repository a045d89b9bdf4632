"""Start Endcap processes the way systemd does, for ``endcap run`` and the tests (dev hosts only).

Each child gets ``NOTIFY_SOCKET`` pointing at a datagram socket we own, so "ready" means the service
itself sent ``READY=1`` (the same signal ``Type=notify`` units use), not that some time has passed.
This is not a supervisor: nothing is restarted here; on the device systemd does that.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Sequence

from .core.paths import Paths


class NotifyListener:
    """A unix datagram socket that collects sd_notify messages from children."""

    def __init__(self, directory: str | Path | None = None) -> None:
        self._dir = Path(tempfile.mkdtemp(prefix="ecn-", dir=directory))
        self.path = str(self._dir / "notify")
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.bind(self.path)
        self.messages: list[str] = []

    def wait_for(self, needle: str, timeout_s: float, alive=lambda: True, count: int = 1) -> bool:
        """Wait until ``count`` received datagrams contain ``needle``. False on timeout or if ``alive()`` turns False."""
        deadline = time.monotonic() + timeout_s
        while True:
            if sum(needle in msg for msg in self.messages) >= count:
                return True
            left = deadline - time.monotonic()
            if left <= 0 or not alive():
                return False
            self._sock.settimeout(min(left, 0.2))
            try:
                self.messages.append(self._sock.recv(4096).decode(errors="replace"))
            except socket.timeout:
                continue

    def close(self) -> None:
        self._sock.close()
        for p in (self.path,):
            try:
                os.unlink(p)
            except FileNotFoundError:
                pass
        os.rmdir(self._dir)


class ServiceProcess:
    """One ``endcap ...`` child process with its own notify socket."""

    def __init__(self, name: str, argv: Sequence[str], *, env: dict[str, str] | None = None,
                 log_path: str | Path | None = None) -> None:
        self.name = name
        self.argv = list(argv)
        self.env = dict(os.environ if env is None else env)
        self.log_path = Path(log_path) if log_path else None
        self.proc: subprocess.Popen | None = None
        self.notify: NotifyListener | None = None
        self._log = None

    @classmethod
    def endcap(cls, name: str, *args: str, **kw) -> "ServiceProcess":
        """A child running this interpreter's ``endcap`` CLI (``python -m endcap.cli ...``)."""
        return cls(name, [sys.executable, "-m", "endcap.cli", *args], **kw)

    def start(self) -> "ServiceProcess":
        self.notify = NotifyListener()
        env = dict(self.env, NOTIFY_SOCKET=self.notify.path, PYTHONUNBUFFERED="1")
        out = subprocess.DEVNULL
        if self.log_path:
            self._log = open(self.log_path, "ab")
            out = self._log
        self.proc = subprocess.Popen(self.argv, env=env, stdout=out, stderr=subprocess.STDOUT if self.log_path else None,
                                     start_new_session=True)
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def wait_ready(self, timeout_s: float = 30.0) -> None:
        """Raise RuntimeError unless the child sends READY=1 within ``timeout_s``."""
        assert self.notify is not None
        if not self.notify.wait_for("READY=1", timeout_s, self.alive):
            code = None if self.proc is None else self.proc.poll()
            raise RuntimeError(f"{self.name} did not become ready within {timeout_s:.0f} s (exit code {code}); "
                               f"see {self.log_path or 'stderr'}")

    def kill(self) -> None:
        """SIGKILL, as a power cut or OOM kill would: no cleanup in the child."""
        if self.alive():
            os.kill(self.pid, signal.SIGKILL)
        self._reap(10)

    def stop(self, timeout_s: float = 10.0) -> int | None:
        """SIGTERM, then SIGKILL if it does not exit in time. Returns the exit code."""
        if self.alive():
            os.kill(self.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                os.kill(self.pid, signal.SIGKILL)
        return self._reap(10)

    def _reap(self, timeout_s: float) -> int | None:
        code = None
        if self.proc is not None:
            code = self.proc.wait(timeout_s)
        if self.notify is not None:
            self.notify.close()
            self.notify = None
        if self._log is not None:
            self._log.close()
            self._log = None
        return code


def wait_health(paths: Paths, service: str, predicate, timeout_s: float = 30.0):
    """Receive ``<service>.health`` until ``predicate(health)`` holds; return that message body.

    Raises:
        RuntimeError: the deadline passed; the message names the last health seen.
    """
    from .core.bus import Subscriber
    from .core.errors import BusTimeout

    last = None
    deadline = time.monotonic() + timeout_s
    with Subscriber([paths.pub_address(service)], [f"{service}.health"], "test", recv_timeout_ms=500) as sub:
        while time.monotonic() < deadline:
            try:
                last = sub.recv().body
            except BusTimeout:
                continue
            if predicate(last):
                return last
    raise RuntimeError(f"{service} health never matched within {timeout_s} s; last: {last}")

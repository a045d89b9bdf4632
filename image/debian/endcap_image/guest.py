"""A QEMU guest of the dev image driven through its serial console (no ssh in the image, no guest agent).

The console is a unix socket QEMU serves; a reader thread appends everything to ``serial.log`` and to
an in-memory buffer, and waiters block on a Condition until a pattern appears (never a sleep). The
dev image logs root in on ttyS0; ``sh()`` runs one command between printed markers and returns its
output and exit status. QEMU runs with ``-no-reboot``: a guest reboot ends the process, and the
harness boots it again (``boot()``) on the same disk and TPM state. Everything is stopped by PID.
"""
from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from . import qemu

PROMPT = re.compile(rb"root@[\w-]+:[^\n]*# ?$")


class GuestError(AssertionError):
    """The guest did not do what the test waited for; the message ends with the console's last lines."""


@dataclass
class ShResult:
    rc: int
    out: str


class Guest:
    def __init__(self, workdir: Path, base_disk: Path, *, forwards: dict[str, int] | None = None) -> None:
        self.dir = workdir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.disk = qemu.overlay_disk(base_disk, self.dir / "disk.img")
        self.vars = qemu.vars_copy(self.dir / "OVMF_VARS.fd")
        self.tpm_state = self.dir / "tpm"
        self.ports = {name: qemu.free_port() for name in (forwards or qemu.GUEST_PORTS)}
        self.log_path = self.dir / "serial.log"
        self.proc: subprocess.Popen | None = None
        self.tpm: qemu.GuestTpm | None = None
        self._sock: socket.socket | None = None
        self._buf = bytearray()
        self._cond = threading.Condition()
        self._reader: threading.Thread | None = None
        self._seq = 0
        self.boots = 0
        self.media: tuple[Path, ...] = ()  # read-only disks attached at the next boot (vdb, ...)

    # -- lifecycle -------------------------------------------------------------------------------
    def boot(self, timeout_s: float = 60.0) -> "Guest":
        """Start swtpm and QEMU and connect the console (QEMU waits for it before running the guest)."""
        self.stop()
        self.tpm = qemu.GuestTpm(self.tpm_state).start()
        serial = self.dir / "serial.sock"
        serial.unlink(missing_ok=True)
        spec = qemu.QemuSpec(disk=self.disk, vars=self.vars, serial=serial, qmp=self.dir / "qmp.sock",
                             tpm_sock=self.tpm.sock, media=self.media,
                             forwards={self.ports[n]: qemu.GUEST_PORTS[n] for n in self.ports})
        with open(self.dir / "qemu.log", "ab") as log:
            self.proc = subprocess.Popen(qemu.command(spec), stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                         start_new_session=True)
        deadline = time.monotonic() + timeout_s
        while True:
            if self.proc.poll() is not None:
                raise GuestError(f"qemu exited with {self.proc.returncode}: {(self.dir / 'qemu.log').read_text()[-2000:]}")
            if serial.exists():
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                try:
                    s.connect(str(serial))
                    break
                except (ConnectionRefusedError, FileNotFoundError):
                    s.close()
            if time.monotonic() > deadline:
                raise GuestError(f"qemu's console socket {serial} not ready within {timeout_s} s")
            try:
                self.proc.wait(timeout=0.05)  # block on the process, not a sleep
            except subprocess.TimeoutExpired:
                pass
        self._sock = s
        with self._cond:
            self._buf.clear()
        self.boots += 1
        self._reader = threading.Thread(target=self._read, args=(s,), daemon=True)
        self._reader.start()
        return self

    def _read(self, s: socket.socket) -> None:
        with open(self.log_path, "ab") as log:
            log.write(f"\n===== boot {self.boots} =====\n".encode())
            while True:
                try:
                    data = s.recv(65536)
                except OSError:
                    data = b""
                with self._cond:
                    if not data:
                        self._cond.notify_all()
                        return
                    self._buf += data
                    self._cond.notify_all()
                log.write(data)
                log.flush()

    def stop(self) -> None:
        """Kill QEMU (like pulling the power) and stop swtpm; both by PID."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        if self._reader is not None:
            self._reader.join(timeout=10)
            self._reader = None
        if self.tpm is not None:
            self.tpm.stop()
            self.tpm = None

    def wait_exit(self, timeout_s: float) -> int:
        """Wait for QEMU to end by itself (a guest reboot with -no-reboot, or poweroff)."""
        assert self.proc is not None
        try:
            return self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            raise GuestError(f"qemu still running after {timeout_s} s{self.tail()}") from None

    # -- console ---------------------------------------------------------------------------------
    def tail(self, n: int = 40) -> str:
        with self._cond:
            text = self._buf.decode(errors="replace")
        return "\n--- console (last lines) ---\n" + "\n".join(text.splitlines()[-n:])

    def wait_for(self, pattern: bytes | re.Pattern, timeout_s: float, start: int = 0) -> re.Match:
        """Block until ``pattern`` appears in the console output after offset ``start``."""
        rx = pattern if isinstance(pattern, re.Pattern) else re.compile(re.escape(pattern))
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while True:
                m = rx.search(self._buf, start)
                if m:
                    return m
                if self.proc is not None and self.proc.poll() is not None and self._reader is not None \
                        and not self._reader.is_alive():
                    raise GuestError(f"qemu exited ({self.proc.returncode}) before {rx.pattern!r}{self.tail()}")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise GuestError(f"{rx.pattern!r} not on the console within {timeout_s} s{self.tail()}")
                self._cond.wait(min(left, 1.0))

    @property
    def offset(self) -> int:
        with self._cond:
            return len(self._buf)

    def send(self, text: str) -> None:
        assert self._sock is not None, "guest not booted"
        self._sock.sendall(text.encode())

    def login(self, timeout_s: float) -> None:
        """Wait for the serial getty's automatic root login, then quiet the kernel on the console."""
        self.wait_for(re.compile(rb"root@[\w-]+:~# "), timeout_s)
        # shell settings, so not inside sh()'s subshell: no bracketed paste, no colours, no pager
        self.send("bind 'set enable-bracketed-paste off'; export SYSTEMD_COLORS=0 SYSTEMD_PAGER= SYSTEMD_URLIFY=0\n")
        self.sh("dmesg -n 1; stty -echo cols 500", timeout_s=60)

    def sh(self, command: str, timeout_s: float = 60.0) -> ShResult:
        """Run ``command`` in the guest's root shell; its output (stdout+stderr) and exit status."""
        self._seq += 1
        n = self._seq
        start = self.offset
        # The markers are printed by the guest; the echoed command line shows them quoted or with `$?`
        # unexpanded, so it never matches.
        self.send(f"echo '@@B''{n}@@'; ( {command} ) 2>&1; echo \"@@E{n}@@ rc=$?\"\n")
        b = self.wait_for(re.compile(rf"@@B{n}@@\r*\n".encode()), timeout_s, start)
        e = self.wait_for(re.compile(rf"@@E{n}@@ rc=(\d+)\r*\n".encode()), timeout_s, b.end())
        out = bytes(self._buf[b.end():e.start()]).decode(errors="replace").replace("\r\n", "\n").strip("\n")
        return ShResult(int(e.group(1)), out)

    def check(self, command: str, timeout_s: float = 60.0) -> str:
        r = self.sh(command, timeout_s)
        if r.rc != 0:
            raise GuestError(f"guest: `{command}` exited {r.rc}:\n{r.out}")
        return r.out

"""A software TPM (swtpm) for dev runs and tests, reached over a unix socket (dev hosts only).

``start_swtpm`` starts ``swtpm socket --tpm2`` with its state in a short directory (a fresh temp dir,
or ``state_dir`` to keep the TPM across runs), waits until its control socket and its TPM socket
both accept a connection (the readiness signal; an early exit is noticed at once), and ``Swtpm.stop`` shuts it down in order
with ``swtpm_ioctl -s`` (SIGTERM by PID only if that fails). Missing binaries are a clear error:
Debian's ``swtpm swtpm-tools`` provide them, and a TPM is never mocked.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Swtpm:
    proc: subprocess.Popen
    state_dir: Path
    sock: Path
    ctrl: Path

    @property
    def tcti(self) -> str:
        return f"swtpm:path={self.sock}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            subprocess.run(["swtpm_ioctl", "--unix", str(self.ctrl), "-s"], capture_output=True, timeout=10)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout=10)


def _accepts(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        try:
            s.connect(str(path))
            return True
        except (FileNotFoundError, ConnectionRefusedError):
            return False


def _wait_ready(proc: subprocess.Popen, sockets: tuple[Path, ...], timeout_s: float) -> None:
    """Ready when every socket accepts: the control socket is created before the TPM's server socket,
    so waiting on the control socket alone races a client that connects at once (seen under load)."""
    ctrl = sockets[0]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"swtpm exited with {proc.returncode}; see {ctrl.parent / 'swtpm.log'}")
        if all(_accepts(p) for p in sockets):
            return
        try:  # block on the process, not a sleep: returns at once if swtpm dies
            proc.wait(timeout=0.01)
        except subprocess.TimeoutExpired:
            pass
    raise RuntimeError(f"swtpm sockets {', '.join(map(str, sockets))} not ready within {timeout_s} s")


def start_swtpm(prefix: str = "swtpm-", state_dir: Path | None = None) -> Swtpm:
    exe = shutil.which("swtpm")
    if exe is None or shutil.which("swtpm_ioctl") is None:
        raise RuntimeError("swtpm/swtpm_ioctl not found: install Debian packages swtpm swtpm-tools (never mocked)")
    if state_dir is not None:
        state_dir.mkdir(parents=True, exist_ok=True)
    d = state_dir or Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    sock, ctrl = d / "s", d / "s.ctrl"  # the swtpm TCTI finds the control socket at <path>.ctrl
    with open(d / "swtpm.log", "wb") as log:  # a file, not a pipe: an unread pipe fills and blocks swtpm
        proc = subprocess.Popen(
            [exe, "socket", "--tpm2", "--server", f"type=unixio,path={sock}", "--ctrl", f"type=unixio,path={ctrl}",
             "--tpmstate", f"dir={d}", "--flags", "startup-clear"],
            stdout=subprocess.DEVNULL, stderr=log)
    tpm = Swtpm(proc, d, sock, ctrl)
    try:
        _wait_ready(proc, (ctrl, sock), 20.0)
    except BaseException:
        tpm.stop()
        shutil.rmtree(d, ignore_errors=True)
        raise
    return tpm

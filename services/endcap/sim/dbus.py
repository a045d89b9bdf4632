"""A private D-Bus daemon for dev runs and tests (dev hosts only): RAUC and the systemd stand-in live on it.

``start_dbus`` writes a bus configuration into a fresh short directory (unix socket there, no TCP),
starts ``dbus-daemon --nofork --print-address``, and treats the printed address as the readiness
signal: dbus-daemon prints it only once it listens. ``policy`` is the ``<policy>`` XML the bus uses;
the default lets every local client own and call anything (a test bus), and a test may pass the
overlay's real policy file contents instead. ``DBusDaemon.stop`` sends SIGTERM to the PID it started,
closes its pipe and removes the directory only when ``start_dbus`` made it (a caller's ``directory`` is
left in place, also when startup fails). The parent keeps no handle on the daemon's log file.
Missing binaries are a clear error: Debian's ``dbus`` (dbus-daemon) provides it, and a bus is never mocked.
"""
from __future__ import annotations

import os
import selectors
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

OPEN_POLICY = """<policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_destination="*" eavesdrop="true"/>
    <allow receive_sender="*"/>
  </policy>"""


@dataclass
class DBusDaemon:
    proc: subprocess.Popen
    directory: Path
    address: str
    owns_directory: bool = False  # True: start_dbus made ``directory`` and stop() removes it

    @property
    def env(self) -> dict[str, str]:
        """Point both the system and the session bus of a child process at this daemon."""
        return {"DBUS_SYSTEM_BUS_ADDRESS": self.address, "DBUS_SESSION_BUS_ADDRESS": self.address}

    def stop(self) -> None:
        """Stop the daemon (idempotent); remove the directory if start_dbus created it."""
        _kill(self.proc)
        if self.owns_directory:
            shutil.rmtree(self.directory, ignore_errors=True)


def _kill(proc: subprocess.Popen) -> None:
    """SIGTERM (SIGKILL after 10 s) the daemon by PID, reap it and close our end of its stdout pipe."""
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
    if proc.stdout is not None:
        proc.stdout.close()


def bus_config(socket_path: Path, policy: str = OPEN_POLICY) -> str:
    return f"""<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path={socket_path}</listen>
  <auth>EXTERNAL</auth>
  {policy}
</busconfig>
"""


def start_dbus(prefix: str = "dbus-", policy: str = OPEN_POLICY, timeout_s: float = 20.0,
               directory: Path | None = None) -> DBusDaemon:
    """Start a bus whose socket is ``<directory>/bus`` (a fresh temp dir under /tmp when None).

    A caller's ``directory`` is never removed, not by a failed start nor by ``stop()``.
    """
    exe = shutil.which("dbus-daemon")
    if exe is None:
        raise RuntimeError("dbus-daemon not found: install the Debian package dbus (never mocked)")
    if directory is not None:
        if len(str(directory / "bus")) > 107:
            raise RuntimeError(f"D-Bus socket path {directory / 'bus'} is longer than 107 bytes; use a shorter root")
        directory.mkdir(parents=True, exist_ok=True)
    owns = directory is None
    d = directory or Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    try:
        if len(str(d / "bus")) > 107:
            raise RuntimeError(f"D-Bus socket path {d / 'bus'} is longer than 107 bytes; use a shorter prefix")
        conf = d / "bus.conf"
        conf.write_text(bus_config(d / "bus", policy))
        with open(d / "dbus.log", "wb") as log:  # the child has its own copy; ours closes at once
            proc = subprocess.Popen([exe, "--nofork", "--nopidfile", f"--config-file={conf}", "--print-address=1"],
                                    stdout=subprocess.PIPE, stderr=log)
        try:
            address = _read_address(proc, d, timeout_s)
        except BaseException:
            _kill(proc)
            raise
    except BaseException:
        if owns:
            shutil.rmtree(d, ignore_errors=True)
        raise
    return DBusDaemon(proc, d, address, owns_directory=owns)


def _read_address(proc: subprocess.Popen, d: Path, timeout_s: float) -> str:
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout_s
    buf = b""
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        while b"\n" not in buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise RuntimeError(f"dbus-daemon printed no address within {timeout_s} s; see {d / 'dbus.log'}")
            if sel.select(left):
                chunk = os.read(proc.stdout.fileno(), 4096)
                if not chunk:
                    raise RuntimeError(f"dbus-daemon exited with {proc.wait()}; see {d / 'dbus.log'}")
                buf += chunk
    return buf.decode().strip()

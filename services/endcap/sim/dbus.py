"""A private D-Bus daemon for dev runs and tests (dev hosts only): RAUC and the systemd stand-in live on it.

``start_dbus`` writes a bus configuration into a fresh short directory (unix socket there, no TCP),
starts ``dbus-daemon --nofork --print-address``, and treats the printed address as the readiness
signal: dbus-daemon prints it only once it listens. ``policy`` is the ``<policy>`` XML the bus uses;
the default lets every local client own and call anything (a test bus), and a test may pass the
overlay's real policy file contents instead. ``DBusDaemon.stop`` sends SIGTERM to the PID it started.
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

    @property
    def env(self) -> dict[str, str]:
        """Point both the system and the session bus of a child process at this daemon."""
        return {"DBUS_SYSTEM_BUS_ADDRESS": self.address, "DBUS_SESSION_BUS_ADDRESS": self.address}

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)


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
    """Start a bus whose socket is ``<directory>/bus`` (a fresh temp dir under /tmp when None)."""
    exe = shutil.which("dbus-daemon")
    if exe is None:
        raise RuntimeError("dbus-daemon not found: install the Debian package dbus (never mocked)")
    if directory is not None:
        directory.mkdir(parents=True, exist_ok=True)
    d = directory or Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    if len(str(d / "bus")) > 107:
        raise RuntimeError(f"D-Bus socket path {d / 'bus'} is longer than 107 bytes; use a shorter root")
    conf = d / "bus.conf"
    conf.write_text(bus_config(d / "bus", policy))
    proc = subprocess.Popen([exe, "--nofork", "--nopidfile", f"--config-file={conf}", "--print-address=1"],
                            stdout=subprocess.PIPE, stderr=open(d / "dbus.log", "wb"))
    try:
        address = _read_address(proc, d, timeout_s)
    except BaseException:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        shutil.rmtree(d, ignore_errors=True)
        raise
    return DBusDaemon(proc, d, address)


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

"""A stand-in for systemd's D-Bus Manager (dev hosts and tests only), over REAL processes.

It owns ``org.freedesktop.systemd1`` on a private bus (``endcap.sim.dbus``) and implements the subset the
maintenance page uses: Manager ``GetUnit``, ``RestartUnit``, ``StartUnit``, ``StopUnit`` and each unit's
``ActiveState``/``SubState``/``MainPID``. Its units are real Endcap services started with
``endcap.launcher.ServiceProcess`` in one ``--root``: restarting a unit stops that process (SIGTERM) and
starts a new one, and the unit is ``active`` only once the new process sent its own ``READY=1``, as with
``Type=notify``. It also owns ``org.freedesktop.login1`` with logind's Manager ``Reboot(b interactive)``,
the orderly reboot: it stops every unit and writes ``--reboot-file`` (there is no machine to reboot).
systemd1's own ``Reboot`` (the forced last step, no units stopped) is deliberately absent.

    python -m endcap.sim.systemd_manager --bus ADDRESS --root ROOT --unit endcap-signage.service=signage ...

It sends ``READY=1`` to its own ``NOTIFY_SOCKET`` once the name is owned (so ``ServiceProcess`` can start it).
"""
from __future__ import annotations

import argparse
import signal
import threading
import time
from pathlib import Path

from ..core.systemd import Notifier
from ..launcher import ServiceProcess

BUS_NAME = "org.freedesktop.systemd1"
MANAGER_PATH = "/org/freedesktop/systemd1"
LOGIN1_NAME = "org.freedesktop.login1"
LOGIN1_PATH = "/org/freedesktop/login1"


def unit_path(name: str) -> str:
    """systemd's object path escaping: every byte outside [A-Za-z0-9] becomes ``_xx``."""
    return MANAGER_PATH + "/unit/" + "".join(c if c.isascii() and c.isalnum() else f"_{ord(c):02x}" for c in name)


class Unit:
    """
    <node>
      <interface name="org.freedesktop.systemd1.Unit">
        <property name="Id" type="s" access="read"/>
        <property name="ActiveState" type="s" access="read"/>
        <property name="SubState" type="s" access="read"/>
        <property name="MainPID" type="u" access="read"/>
        <property name="Restarts" type="u" access="read"/>
      </interface>
    </node>
    """

    def __init__(self, name: str, service: str, root: str, logs: Path) -> None:
        self.Id, self.service, self.root, self.logs = name, service, root, logs
        self.proc: ServiceProcess | None = None
        self.ActiveState, self.SubState, self.Restarts = "inactive", "dead", 0
        self._lock = threading.Lock()

    @property
    def MainPID(self) -> int:
        return self.proc.pid if self.proc is not None and self.proc.alive() else 0

    def start(self) -> None:
        with self._lock:
            if self.proc is not None and self.proc.alive():
                return
            self.ActiveState, self.SubState = "activating", "start"
            self.proc = ServiceProcess.endcap(self.service, "service", self.service, "--root", self.root,
                                              log_path=self.logs / f"{self.service}.log").start()
            try:
                self.proc.wait_ready(60)
                self.ActiveState, self.SubState = "active", "running"
            except RuntimeError:
                self.ActiveState, self.SubState = "failed", "failed"

    def stop(self) -> None:
        with self._lock:
            if self.proc is not None:
                self.ActiveState, self.SubState = "deactivating", "stop-sigterm"
                self.proc.stop()
                self.proc = None
            self.ActiveState, self.SubState = "inactive", "dead"

    def restart(self) -> None:
        self.stop()
        self.Restarts += 1
        self.start()


class Manager:
    """
    <node>
      <interface name="org.freedesktop.systemd1.Manager">
        <method name="GetUnit"><arg name="name" type="s" direction="in"/><arg name="unit" type="o" direction="out"/></method>
        <method name="RestartUnit"><arg name="name" type="s" direction="in"/><arg name="mode" type="s" direction="in"/><arg name="job" type="o" direction="out"/></method>
        <method name="StartUnit"><arg name="name" type="s" direction="in"/><arg name="mode" type="s" direction="in"/><arg name="job" type="o" direction="out"/></method>
        <method name="StopUnit"><arg name="name" type="s" direction="in"/><arg name="mode" type="s" direction="in"/><arg name="job" type="o" direction="out"/></method>
      </interface>
    </node>
    """

    def __init__(self, units: dict[str, Unit]) -> None:
        self.units = units
        self._jobs = 0

    def _unit(self, name: str) -> Unit:
        if name not in self.units:
            raise KeyError(f"Unit {name} not loaded.")
        return self.units[name]

    def _job(self, fn) -> str:
        self._jobs += 1
        threading.Thread(target=fn, daemon=True).start()  # systemd answers with a job, then works
        return f"{MANAGER_PATH}/job/{self._jobs}"

    def GetUnit(self, name: str) -> str:
        self._unit(name)
        return unit_path(name)

    def RestartUnit(self, name: str, mode: str) -> str:
        return self._job(self._unit(name).restart)

    def StartUnit(self, name: str, mode: str) -> str:
        return self._job(self._unit(name).start)

    def StopUnit(self, name: str, mode: str) -> str:
        return self._job(self._unit(name).stop)



class Login1:
    """
    <node>
      <interface name="org.freedesktop.login1.Manager">
        <method name="Reboot"><arg name="interactive" type="b" direction="in"/></method>
      </interface>
    </node>
    """

    def __init__(self, units: dict[str, Unit], reboot_file: Path | None) -> None:
        self.units, self.reboot_file = units, reboot_file

    def Reboot(self, interactive: bool) -> None:
        def reboot() -> None:  # logind asks systemd for reboot.target: every unit stops first
            for u in self.units.values():
                u.stop()
            if self.reboot_file is not None:
                self.reboot_file.write_text(f"{time.time()} login1 interactive={bool(interactive)}\n")
        threading.Thread(target=reboot, daemon=True).start()


def main(argv: list[str] | None = None) -> int:
    import pydbus
    from gi.repository import GLib

    ap = argparse.ArgumentParser(prog="systemd_manager", description=__doc__.splitlines()[0])
    ap.add_argument("--bus", required=True, help="D-Bus address to own org.freedesktop.systemd1 on")
    ap.add_argument("--root", required=True, help="the Endcap root the units run in")
    ap.add_argument("--unit", action="append", default=[], help="UNIT=SERVICE, e.g. endcap-pos.service=pos")
    ap.add_argument("--reboot-file", type=Path, help="written when login1's Reboot is called")
    ap.add_argument("--no-start", action="store_true", help="leave the units inactive at start")
    args = ap.parse_args(argv)
    logs = Path(args.root) / "log"
    logs.mkdir(parents=True, exist_ok=True)
    units = {}
    for spec in args.unit:
        name, _, service = spec.partition("=")
        if not service:
            ap.error(f"--unit {spec!r}: expected UNIT=SERVICE")
        units[name] = Unit(name, service, args.root, logs)
    if not args.no_start:
        for u in units.values():
            u.start()
    bus = pydbus.connect(args.bus)
    manager = Manager(units)
    objects = [(MANAGER_PATH, manager)] + [(unit_path(n), u) for n, u in units.items()]
    publication = bus.publish(BUS_NAME, *objects)
    login1 = bus.publish(LOGIN1_NAME, (LOGIN1_PATH, Login1(units, args.reboot_file)))
    loop = GLib.MainLoop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, sig, loop.quit)
    Notifier().ready(f"{len(units)} units")
    try:
        loop.run()
    finally:
        login1.unpublish()
        publication.unpublish()
        for u in units.values():
            u.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

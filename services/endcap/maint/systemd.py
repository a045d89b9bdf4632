"""systemd control through its D-Bus API (pydbus): unit state and restart (allowlisted units only), and
reboot through logind (``org.freedesktop.login1.Manager.Reboot(false)``: an orderly reboot that stops
every unit, allowed to ``endcap-maint`` by polkit; systemd1's ``Reboot`` is the forced last step that
needs CAP_SYS_BOOT, which the service does not have).

``bus`` is ``system`` on the device or a bus address (the private test bus with the stand-in from
``endcap.sim.systemd_manager``). pydbus/GLib are imported on first use; their errors become ``EndcapError``.
"""
from __future__ import annotations

import threading
from typing import Any

from ..core.errors import EndcapError

BUS_NAME = "org.freedesktop.systemd1"
MANAGER_PATH = "/org/freedesktop/systemd1"
LOGIN1_NAME = "org.freedesktop.login1"
LOGIN1_PATH = "/org/freedesktop/login1"


class NotAllowed(EndcapError):
    code = "not_allowed"


class Systemd:
    def __init__(self, bus: str, allowed: list[str]) -> None:
        self.bus_spec, self.allowed = bus, list(allowed)
        self._bus: Any = None
        self._lock = threading.Lock()

    def _connect(self) -> Any:
        with self._lock:
            if self._bus is None:
                import pydbus
                self._bus = pydbus.SystemBus() if self.bus_spec == "system" else pydbus.connect(self.bus_spec)
            return self._bus

    def _call(self, fn):
        try:
            return fn(self._connect())
        except EndcapError:
            raise
        except Exception as e:  # GLib.Error and friends from the D-Bus layer
            raise EndcapError(f"systemd: {str(e)[:300]}", code="systemd") from e

    def check(self, unit: str) -> None:
        if unit not in self.allowed:
            raise NotAllowed(f"unit {unit[:80]!r} is not one the maintenance page may control")

    def state(self, unit: str) -> tuple[str, str]:
        """(ActiveState, SubState) of an allowlisted unit."""
        self.check(unit)

        def get(bus):
            try:
                path = bus.get(BUS_NAME, MANAGER_PATH).GetUnit(unit)
            except Exception as e:  # GetUnit fails for a unit systemd has not loaded (never started)
                if "NoSuchUnit" in str(e) or "not loaded" in str(e):
                    return "inactive", "not loaded"
                raise
            u = bus.get(BUS_NAME, path)["org.freedesktop.systemd1.Unit"]
            return str(u.ActiveState), str(u.SubState)
        return self._call(get)

    def restart(self, unit: str) -> str:
        self.check(unit)
        return self._call(lambda bus: str(bus.get(BUS_NAME, MANAGER_PATH).RestartUnit(unit, "replace")))

    def reboot(self) -> None:
        """An orderly reboot via logind (interactive=false: polkit decides, nobody is asked)."""
        self._call(lambda bus: bus.get(LOGIN1_NAME, LOGIN1_PATH)["org.freedesktop.login1.Manager"].Reboot(False))

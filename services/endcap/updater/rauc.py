"""Adapter to RAUC's D-Bus API (``de.pengutronix.rauc.Installer`` at ``/``) through pydbus.

pydbus and GLib are imported when a ``Rauc`` is opened, never at import time. Every GLib/D-Bus error
is translated into ``UpdateError`` (code ``rauc_unavailable`` when the service is not on the bus).
Install completion is observed by polling ``Operation``/``LastError`` together with the ``Completed``
signal, pumped from the caller's loop (``poll``), so no GLib thread is needed.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Optional

from ..core import messages as m
from ..core.errors import UpdateError

BUS_NAME = "de.pengutronix.rauc"


@dataclass(frozen=True)
class InstallProgress:
    running: bool
    percent: int
    message: str
    result: Optional[int] = None  # Completed's result (0 = success) once finished
    error: str = ""


UNAVAILABLE = ("ServiceUnknown", "NoReply", "Disconnected", "NameHasNoOwner")
TIMEOUT = ("Timeout was reached", "org.freedesktop.DBus.Error.Timeout", "TimedOut", "timed out")
TRANSIENT_CODES = ("rauc_unavailable", "rauc_timeout")  # worth trying again; "rauc" is RAUC's own refusal


def _err(what: str, e: BaseException) -> UpdateError:
    """Translate a GLib/D-Bus error: ``rauc_unavailable`` (not on the bus), ``rauc_timeout`` (no answer in
    time: transient, never a verdict on a bundle) or ``rauc`` (RAUC answered with an error)."""
    text = str(e)
    if any(t in text for t in UNAVAILABLE):
        code = "rauc_unavailable"
    elif any(t in text for t in TIMEOUT):
        code = "rauc_timeout"
    else:
        code = "rauc"
    return UpdateError(f"RAUC {what}: {text}", code=code)


class Rauc:
    """One connection to RAUC: its own D-Bus connection when ``bus_address`` is given (GLib caches the
    system bus per process, so a fresh connection is what lets a process meet a restarted bus)."""

    def __init__(self, bus_address: str = "") -> None:
        """``bus_address`` empty: the system bus; else that bus (a private one in tests and dev runs)."""
        try:
            from gi.repository import Gio, GLib
            from pydbus import SystemBus
            from pydbus.bus import Bus
        except ImportError as e:  # platform module missing: a clear error, not an ImportError trace
            raise UpdateError(f"pydbus/PyGObject not installed: {e}", code="rauc_unavailable") from e
        self._glib = GLib
        self._own = bool(bus_address)
        try:
            if bus_address:
                flags = (Gio.DBusConnectionFlags.AUTHENTICATION_CLIENT
                         | Gio.DBusConnectionFlags.MESSAGE_BUS_CONNECTION)
                self._bus = Bus(Gio.DBusConnection.new_for_address_sync(bus_address, flags, None, None))
            else:
                self._bus = SystemBus()
            self._proxy = self._bus.get(BUS_NAME, "/")
        except Exception as e:  # GLib.Error and pydbus KeyError alike
            raise _err("connect", e) from e
        self._completed: Optional[int] = None
        self._sub = None

    def _call(self, what: str, fn, *args: Any) -> Any:
        try:
            return fn(*args)
        except Exception as e:
            raise _err(what, e) from e

    def install(self, path: str) -> None:
        """Start installing ``path`` (absolute); returns at once, follow with ``poll``."""
        if not os.path.isabs(path):
            raise UpdateError(f"bundle path {path!r} is not absolute (RAUC resolves paths in its own cwd)",
                              code="bad_request")
        self._completed = None
        if self._sub is None:
            self._sub = self._call("subscribe", self._proxy.Completed.connect, self._on_completed)
        self._call("InstallBundle", self._proxy.InstallBundle, path, {})

    def _on_completed(self, result: int) -> None:
        self._completed = int(result)

    def poll(self) -> InstallProgress:
        ctx = self._glib.MainContext.default()
        while ctx.iteration(False):
            pass
        op = self._call("Operation", lambda: self._proxy.Operation)
        pct, msg, _depth = self._call("Progress", lambda: self._proxy.Progress)
        running = op != "idle" and self._completed is None
        error = "" if running else self._call("LastError", lambda: self._proxy.LastError)
        result = self._completed if self._completed is not None else (None if running else (1 if error else 0))
        return InstallProgress(running, int(pct), str(msg), result, str(error))

    def operation(self) -> str:
        """RAUC's ``Operation``: ``idle`` or ``installing``."""
        return str(self._call("Operation", lambda: self._proxy.Operation))

    def compatible(self) -> str:
        return str(self._call("Compatible", lambda: self._proxy.Compatible))

    def boot_slot(self) -> str:
        return str(self._call("BootSlot", lambda: self._proxy.BootSlot))

    def primary(self) -> Optional[str]:
        try:
            return str(self._proxy.GetPrimary())
        except Exception:  # the boot backend may not know one (e.g. empty grubenv); report unknown
            return None

    def slots(self) -> list[tuple[str, dict[str, Any]]]:
        return [(str(n), dict(d)) for n, d in self._call("GetSlotStatus", self._proxy.GetSlotStatus)]

    def mark(self, state: str, slot: str = "booted") -> str:
        """``Mark("good"|"bad"|"active", "booted"|"other"|name)``; returns RAUC's message."""
        _name, message = self._call(f"Mark({state}, {slot})", self._proxy.Mark, state, slot)
        return str(message)

    def slot_builds(self) -> dict[str, tuple[str, str]]:
        """bootname → (bundle.version, bundle.build) that RAUC recorded when it wrote each rootfs slot
        (from the signature-checked manifest); slots without a record are left out."""
        out = {}
        for _name, d in self.slots():
            if d.get("class") == "rootfs" and "bootname" in d and d.get("bundle.version"):
                out[str(d["bootname"])] = (str(d["bundle.version"]), str(d.get("bundle.build", "")))
        return out

    def info(self, path: str) -> tuple[str, str]:
        """(compatible, version) of a bundle after RAUC checked its signature against the keyring."""
        compatible, version = self._call("Info", self._proxy.Info, path)
        return str(compatible), str(version)

    def close(self) -> None:
        if self._sub is not None:
            try:
                self._sub.disconnect()
            except Exception:  # the bus may be gone already; nothing to release then
                pass
            self._sub = None
        con = getattr(self._bus, "con", None)
        if con is not None and self._own:
            try:
                con.close_sync(None)
            except Exception:  # already closed by the peer
                pass


def slot_infos(slots: list[tuple[str, dict[str, Any]]]) -> list[m.SlotInfo]:
    """RAUC's GetSlotStatus → our ``SlotInfo`` (rootfs class only), sorted by bootname."""
    out = []
    for name, d in slots:
        if d.get("class") != "rootfs" or "bootname" not in d:
            continue
        out.append(m.SlotInfo(name=name, bootname=str(d["bootname"]), state=str(d.get("state", "inactive")),
                              boot_status=str(d.get("boot-status", "unknown")),
                              version=d.get("bundle.version"), installed_at=d.get("installed.timestamp")))
    return sorted(out, key=lambda s: s.bootname)

"""Network settings applied with automatic rollback unless confirmed in time.

``Settings`` validates form values and renders a systemd-networkd ``.network`` file (pure).
``Pending`` is the pure state machine: apply → pending(deadline) → confirmed | rolled back.
``NetworkdApplier`` writes the file atomically into the configured directory and asks networkd to
reload over D-Bus; ``Network`` joins them with a timer thread that waits on an event (confirm) and
rolls back by itself when the deadline passes.

A change is recorded in ``<state>/network-pending.json`` (the previous file and the deadline) before
the new file is written, and that record is removed once the change is confirmed or rolled back. If
writing or reloading fails, the previous file is put back at once and nothing stays pending. At start
(``recover``), a record left behind (the service or the device restarted inside the window) means the
change was never confirmed: the previous file is put back.
"""
from __future__ import annotations

import ipaddress
import json
import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional, Protocol

from ..core.atomic import atomic_write
from ..core.errors import EndcapError
from .logs import BadInput

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Settings:
    mode: str  # dhcp | static
    address: str = ""  # CIDR, static only
    gateway: str = ""
    dns: tuple[str, ...] = ()

    @classmethod
    def parse(cls, form) -> "Settings":
        mode = (form.get("mode") or "").strip()
        if mode not in ("dhcp", "static"):
            raise BadInput(f"mode: {mode[:20]!r} is not dhcp or static")
        if mode == "dhcp":
            return cls("dhcp")
        addr = (form.get("address") or "").strip()
        try:
            iface = ipaddress.ip_interface(addr)
        except ValueError:
            raise BadInput(f"address: {addr[:60]!r} is not an address with prefix, e.g. 192.168.1.20/24") from None
        if iface.network.prefixlen == iface.max_prefixlen or iface.ip == iface.network.network_address:
            raise BadInput(f"address: {addr[:60]!r} is a network or single-host prefix")
        gw = (form.get("gateway") or "").strip()
        if gw:
            try:
                g = ipaddress.ip_address(gw)
            except ValueError:
                raise BadInput(f"gateway: {gw[:60]!r} is not an IP address") from None
            if g not in iface.network:
                raise BadInput(f"gateway: {gw} is not in {iface.network}")
        dns = tuple(x for x in (form.get("dns") or "").replace(",", " ").split() if x)
        for d in dns:
            try:
                ipaddress.ip_address(d)
            except ValueError:
                raise BadInput(f"dns: {d[:60]!r} is not an IP address") from None
        if len(dns) > 3:
            raise BadInput("dns: at most 3 servers")
        return cls("static", str(iface), gw, dns)

    def render(self, interface: str) -> str:
        lines = ["# written by the Endcap maintenance page", "[Match]", f"Name={interface}", "", "[Network]"]
        if self.mode == "dhcp":
            lines.append("DHCP=yes")
        else:
            lines.append(f"Address={self.address}")
            if self.gateway:
                lines.append(f"Gateway={self.gateway}")
            lines += [f"DNS={d}" for d in self.dns]
        return "\n".join(lines) + "\n"


@dataclass
class Pending:
    """Pure: what is applied and what to return to. ``state`` is idle, pending, confirmed or rolled-back."""

    state: str = "idle"
    previous: Optional[str] = None  # file content before the change (None: there was no file)
    applied: Optional[str] = None
    deadline: float = 0.0
    history: list[str] = field(default_factory=list)

    def apply(self, previous: Optional[str], new: str, now: float, confirm_s: float) -> None:
        if self.state == "pending":
            raise BadInput("network: a change is waiting for confirmation; confirm or let it roll back first")
        self.state, self.previous, self.applied, self.deadline = "pending", previous, new, now + confirm_s

    def confirm(self, now: float) -> bool:
        if self.state != "pending" or now > self.deadline:
            return False
        self.state = "confirmed"
        return True

    def abort(self) -> None:
        """The change could not be applied (and the previous file is back): nothing is pending."""
        if self.state == "pending":
            self.state = "failed"

    def expire(self, now: float) -> Optional[Optional[str]]:
        """At/after the deadline of a pending change: mark rolled back and return what to restore."""
        if self.state != "pending" or now < self.deadline:
            return None
        self.state = "rolled-back"
        return self.previous if self.previous is not None else ""


class Applier(Protocol):
    def current(self) -> Optional[str]: ...
    def write(self, content: Optional[str]) -> None: ...


class ApplyFailed(EndcapError):
    code = "network"


class NetworkdApplier:
    """Writes ``<dir>/10-endcap-<iface>.network`` and reloads networkd (``org.freedesktop.network1``)."""

    def __init__(self, directory: str, interface: str, reload: Callable[[], None] | None) -> None:
        self.path = Path(directory) / f"10-endcap-{interface}.network"
        self._reload = reload

    def current(self) -> Optional[str]:
        try:
            return self.path.read_text()
        except FileNotFoundError:
            return None

    def write(self, content: Optional[str]) -> None:
        if content:
            atomic_write(self.path, content.encode())
        else:
            self.path.unlink(missing_ok=True)
        if self._reload is not None:
            self._reload()


def networkd_reload(bus_spec: str) -> Callable[[], None]:
    def reload() -> None:
        import pydbus
        bus = pydbus.SystemBus() if bus_spec == "system" else pydbus.connect(bus_spec)
        bus.get("org.freedesktop.network1", "/org/freedesktop/network1").Reload()
    return reload


class Network:
    def __init__(self, applier: Applier, interface: str, confirm_s: float, clock: Callable[[], float],
                 record: Optional[Path] = None) -> None:
        self.applier, self.interface, self.confirm_s, self.clock = applier, interface, confirm_s, clock
        self.record = record  # where a pending change is remembered across restarts (None: memory only)
        self.machine = Pending()
        self._confirmed = threading.Event()
        self.settled = threading.Event()  # set when a pending change is confirmed or rolled back
        self._lock = threading.Lock()

    def _remember(self) -> None:
        if self.record is not None:
            atomic_write(self.record, json.dumps({"previous": self.machine.previous, "applied": self.machine.applied,
                                                  "deadline": self.machine.deadline}).encode(), mode=0o600)

    def _forget(self) -> None:
        if self.record is not None:
            self.record.unlink(missing_ok=True)

    def _restore(self, previous: Optional[str]) -> None:
        """Put the previous file back; a failing reload is logged (the file is what networkd reads next)."""
        try:
            self.applier.write(previous or None)
        except Exception as e:  # reload failed: the file is back, networkd picks it up on its next reload
            log.error("network: previous settings written back, but the reload failed: %s", e)

    def recover(self) -> bool:
        """At start: roll back a change left unconfirmed by a restart. True when one was rolled back."""
        if self.record is None or not self.record.exists():
            return False
        with self._lock:
            try:
                rec = json.loads(self.record.read_text())
                previous = rec["previous"]
                if previous is not None and not isinstance(previous, str):
                    raise ValueError("previous is not text")
            except (OSError, ValueError, KeyError, TypeError) as e:
                log.error("network: %s does not parse (%s); left as is, nothing rolled back", self.record, e)
                return False
            log.warning("network: a change was never confirmed (restart inside the window): rolled back")
            self._restore(previous)
            self.machine = Pending(state="rolled-back", previous=previous, applied=rec.get("applied"))
            self._forget()
        self.settled.set()
        return True

    def apply(self, s: Settings) -> float:
        """Write the new settings now; returns the deadline. They roll back unless confirmed by then.

        Raises:
            BadInput: a change is already pending.
            ApplyFailed: writing or reloading failed; the previous settings are back, nothing is pending.
        """
        with self._lock:
            content = s.render(self.interface)
            previous = self.applier.current()
            self.machine.apply(previous, content, self.clock(), self.confirm_s)
            self._confirmed.clear()
            self.settled.clear()
            try:
                self._remember()
                self.applier.write(content)
            except Exception as e:
                self._restore(previous)
                self.machine.abort()
                self._forget()
                self.settled.set()
                raise ApplyFailed(f"network: the new settings could not be applied ({str(e)[:200]}); "
                                  "the previous settings are back") from e
        threading.Thread(target=self._watch, name="maint-net-rollback", daemon=True).start()
        return self.machine.deadline

    def confirm(self) -> bool:
        with self._lock:
            ok = self.machine.confirm(self.clock())
            if ok:
                self._forget()
        if ok:
            self._confirmed.set()
            self.settled.set()
        return ok

    def _watch(self) -> None:
        if self._confirmed.wait(self.confirm_s):
            return
        with self._lock:
            restore = self.machine.expire(max(self.clock(), self.machine.deadline))  # the timer ran out
            if restore is None:
                return
            log.warning("network change not confirmed within %.0f s: rolled back", self.confirm_s)
            self._restore(restore or None)
            self._forget()
        self.settled.set()

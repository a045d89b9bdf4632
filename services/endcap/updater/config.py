"""``[updater]``: this device's ring and compatible, where RAUC is, the reboot window and the health gate.

Polling the fleet's TUF repository is on when ``repo_url`` is set (then ``trusted_root`` is required).

Unknown keys are errors; only ``compatible`` has no default. Validation does no I/O.
"""
from __future__ import annotations

from typing import Annotated

from msgspec import Meta

from ..core.config import Strict
from . import floor, machine


class UpdaterConfig(Strict):
    compatible: str
    """RAUC ``compatible`` of this device; a bundle or ring entry for another platform is refused."""
    ring: str = "fleet"
    """Rollout ring this device follows: ``canary``, ``pilot`` or ``fleet``."""
    reboot_window: str = ""
    """Local time span for the reboot after an install, ``HH:MM-HH:MM`` (may wrap midnight); empty: at once."""
    confirm_timeout_s: Annotated[float, Meta(gt=0)] = 600.0
    """After booting a new slot: how long every ``health_services`` entry has to report ok before rollback."""
    health_services: tuple[str, ...] = ("pos", "vision", "offers", "signage", "trust")
    """Services whose ``<svc>.health`` must be ok (work flowing) before the new slot is marked good."""
    factory_version: str = "0.0.0"
    """Running version when RAUC has no record for the booted slot (a freshly flashed device)."""
    floor_file: str = ""
    """File the pre-install handler reads (version + epoch floor); empty: ``<state>/floor.json``."""
    dbus_address: str = ""
    """D-Bus address where RAUC is; empty: the system bus (a private bus in tests and dev runs)."""
    reboot_command: tuple[str, ...] = ("systemctl", "reboot")
    """Command that reboots the device after an install or to roll back."""
    status_interval_s: Annotated[float, Meta(gt=0)] = 5.0
    """How often ``updater.status`` and ``updater.health`` are published (also on every change)."""
    repo_url: str = ""
    """Base URL of the fleet's TUF repository (``metadata/`` and ``targets/`` below it); empty: no polling,
    only bundles handed over with ``install_file``."""
    trusted_root: str = ""
    """Path of the TUF root.json installed at provisioning: the client's first trusted root."""
    poll_interval_s: Annotated[float, Meta(gt=0)] = 3600.0
    """How often the repository is polled (also at start and on the ``check`` RPC)."""
    retry_interval_s: Annotated[float, Meta(gt=0)] = 300.0
    """After a poll or download failed on the network (a cut download resumes): the next try, if sooner."""
    bandwidth_bytes_s: Annotated[int, Meta(ge=0)] = 0
    """Download limit in bytes/s (shared store uplink); 0: unlimited."""
    download_timeout_s: Annotated[float, Meta(gt=0)] = 30.0
    """Socket timeout for metadata and bundle downloads; a stalled download resumes on the next poll."""
    floor_source: str = "trust"
    """Where the security-epoch floor comes from: ``trust`` (the TPM counter via the trust service; the
    floor file is kept in sync) or ``file`` (only ``floor_file``: devices without a TPM, tests)."""
    trust_timeout_ms: Annotated[int, Meta(gt=0)] = 5000
    """How long a ``firmware_floor``/``raise_firmware_floor`` call to trust may take."""
    boot_id_file: str = "/proc/sys/kernel/random/boot_id"
    """Where the kernel's boot id is read: it proves that a reboot asked for really happened (tests point it
    at a file they change when they play a reboot)."""
    upload_dir: str = ""
    """Folder of bundles uploaded on the maintenance page: a bundle handed over by ``install_file`` from
    inside it is deleted once its install ended (installed, refused or failed); empty: never delete."""

    def __post_init__(self) -> None:
        if not self.compatible.strip():
            raise ValueError("compatible: must name this device's platform")
        if self.ring not in ("canary", "pilot", "fleet"):
            raise ValueError(f"ring: {self.ring!r} is not canary, pilot or fleet")
        if self.reboot_window:
            parts = self.reboot_window.split("-")
            if len(parts) != 2:
                raise ValueError(f"reboot_window: {self.reboot_window!r} is not HH:MM-HH:MM")
            for part in parts:
                try:
                    machine.parse_hhmm(part)
                except ValueError as e:
                    raise ValueError(f"reboot_window: {e}") from None
        if self.repo_url:
            if not self.repo_url.startswith(("http://", "https://")):
                raise ValueError(f"repo_url: {self.repo_url!r} is not an http:// or https:// URL")
            if not self.trusted_root:
                raise ValueError("trusted_root: required when repo_url is set (the TUF root.json from provisioning)")
        if self.trusted_root and not self.trusted_root.startswith("/"):
            raise ValueError(f"trusted_root: {self.trusted_root!r} is not an absolute path")
        for key in ("boot_id_file", "upload_dir"):
            value = getattr(self, key)
            if value and not value.startswith("/"):
                raise ValueError(f"{key}: {value!r} is not an absolute path")
        if self.floor_source not in ("trust", "file"):
            raise ValueError(f"floor_source: {self.floor_source!r} is not trust or file")
        try:
            floor.parse_version(self.factory_version, "factory_version")
        except Exception as e:
            raise ValueError(f"factory_version: {e}") from None

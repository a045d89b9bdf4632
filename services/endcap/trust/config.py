"""``[trust]``: where the TPM is, which models this device accepts, and the store's limits.

Unknown keys are errors; only ``compatible`` has no default (a device must say what it is).
"""
from __future__ import annotations

from typing import Annotated

from msgspec import Meta

from ..core.config import Strict
from .tpm import DEFAULT_AK_HANDLE, DEFAULT_ANCHOR_INDEX, DEFAULT_COUNTER_INDEX


class TrustConfig(Strict):
    compatible: str
    """The hardware/platform string a package's ``compatible`` must equal, e.g. ``endcap-orin-nano``."""
    tcti: str = "device:/dev/tpmrm0"
    """TPM transport (tpm2-tss TCTI): ``device:/dev/tpmrm0`` on the device, ``swtpm:path=SOCKET`` in tests/dev."""
    pcr: Annotated[int, Meta(ge=0, le=23)] = 14
    """SHA-256 PCR that measures each activated manifest. 16 and 23 are resettable: tests only.
    14 is unused by both image tracks (no shim); docs/trust.md says how to pick another."""
    anchor_index: Annotated[int, Meta(ge=0x01000000, le=0x013FFFFF)] = DEFAULT_ANCHOR_INDEX
    """Owner NV index holding the write-locked trust anchor (root key hash + counter base)."""
    counter_index: Annotated[int, Meta(ge=0x01000000, le=0x013FFFFF)] = DEFAULT_COUNTER_INDEX
    """Owner NV counter index holding the anti-rollback epoch."""
    ak_handle: Annotated[int, Meta(ge=0x81000000, le=0x817FFFFF)] = DEFAULT_AK_HANDLE
    """Persistent handle of the attestation key created at enrolment."""
    max_package_bytes: Annotated[int, Meta(gt=0)] = 1 << 30
    """Largest package (sum of its files) the store accepts."""
    max_file_bytes: Annotated[int, Meta(gt=0)] = 1 << 30
    """Largest single file in a package."""
    check_interval_s: Annotated[float, Meta(gt=0)] = 30.0
    """How often the service proves the TPM still answers (epoch read + anchor check): its health work."""
    health_interval_s: Annotated[float, Meta(gt=0)] = 2.0
    """How often ``trust.health`` and ``trust.model`` are published (also on every change)."""
    firmware_floor_file: str = ""
    """The updater's floor file (its committed version + epoch): ``raise_firmware_floor`` never goes above its
    epoch. Empty: ``<state>/updater/floor.json`` (the updater's default)."""

    def __post_init__(self) -> None:
        if not self.compatible.strip():
            raise ValueError("compatible: must name this device's platform")
        if not (self.tcti.startswith(("device:", "swtpm:", "mssim:", "tabrmd"))):
            raise ValueError(f"tcti: {self.tcti!r} is not a device:, swtpm:, mssim: or tabrmd TCTI")

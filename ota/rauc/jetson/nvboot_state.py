"""Pure state and decisions of the Orin RAUC `custom` boot backend (stdlib only, no I/O).

The backend maps RAUC's bootnames A/B to Jetson rootfs slots 0/1. Two sources of truth on the device:
- `nvbootctrl` (Jetson Linux R36): which slot is booted now (`get-current-slot`) and which one the
  firmware will try next (`dump-slots-info`, "Active ... slot").
- the UEFI variables `RootfsStatusSlotA/B` (NVIDIA public GUID below) in efivarfs: 4 bytes of attributes
  then a little-endian UINT32; edk2-nvidia knows 0x00 (normal) and 0xFF (unbootable). The firmware
  skips an unbootable slot and falls back to the other one; it writes 0xFF itself once a slot used up its
  boot retries, and nothing on R36 writes 0x00 again (there is no `mark-boot-successful`), so this
  backend does, when RAUC marks a slot good or makes it primary.

Invariants: a slot is "good" only when its variable reads exactly 0x00; any value other than 0x00/0xFF is
refused, never guessed. `set-primary` re-enables the slot (writes 0x00) before activating it: RAUC
marks the target bad before writing it and only calls set-primary once the write succeeded.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple, Union

NVIDIA_PUBLIC_GUID = "781e084c-a330-417c-b678-38e696380cb9"
STATUS_NORMAL = 0x00
STATUS_UNBOOTABLE = 0xFF
# EFI_VARIABLE_NON_VOLATILE | BOOTSERVICE_ACCESS | RUNTIME_ACCESS, as edk2-nvidia creates these variables.
EFI_ATTRIBUTES = 0x7
BOOTNAMES = ("A", "B")
TARGETS = ("rootfs", "bootloader")


class NvbootError(Exception):
    """A refused request or an unreadable platform state; the message names the input and the reason."""


@dataclass(frozen=True)
class SlotsInfo:
    """What `nvbootctrl dump-slots-info` says: booted slot, next-boot slot, per-slot status words."""

    current: int
    active: int
    status: Dict[int, str] = field(default_factory=dict)
    retry_count: Dict[int, int] = field(default_factory=dict)


@dataclass(frozen=True)
class BootState:
    """Everything a decision needs: slots from nvbootctrl, status values from the UEFI variables."""

    current: int
    active: int
    status: Tuple[int, int]


@dataclass(frozen=True)
class WriteStatus:
    slot: int
    value: int


@dataclass(frozen=True)
class SetActive:
    slot: int


@dataclass(frozen=True)
class Verify:
    """`nvbootctrl verify`: confirms the boot chain after a successful boot of the current slot."""


Action = Union[WriteStatus, SetActive, Verify]


def slot_of(bootname: str) -> int:
    """Bootname A/B → slot 0/1."""
    if bootname not in BOOTNAMES:
        raise NvbootError(f"bootname {bootname!r}: must be one of A, B (the bootnames in system.conf)")
    return BOOTNAMES.index(bootname)


def bootname_of(slot: int) -> str:
    if slot not in (0, 1):
        raise NvbootError(f"slot {slot!r}: must be 0 or 1")
    return BOOTNAMES[slot]


def other(slot: int) -> int:
    return 1 - slot


def variable_name(slot: int) -> str:
    """The efivarfs file name of a slot's status variable."""
    return f"RootfsStatusSlot{bootname_of(slot)}-{NVIDIA_PUBLIC_GUID}"


def decode_status(raw: bytes, name: str) -> int:
    """efivarfs content (4 attribute bytes + UINT32 LE) → status value."""
    if len(raw) != 8:
        raise NvbootError(f"{name}: expected 8 bytes (4 attribute bytes + a UINT32), got {len(raw)}")
    return int.from_bytes(raw[4:8], "little")


def encode_status(value: int) -> bytes:
    if value not in (STATUS_NORMAL, STATUS_UNBOOTABLE):
        raise NvbootError(f"status value {value:#x}: only 0x00 (normal) and 0xff (unbootable) are written")
    return EFI_ATTRIBUTES.to_bytes(4, "little") + value.to_bytes(4, "little")


def state_word(value: int, name: str) -> str:
    """Status value → RAUC's "good"/"bad"."""
    if value == STATUS_NORMAL:
        return "good"
    if value == STATUS_UNBOOTABLE:
        return "bad"
    raise NvbootError(f"{name}: unknown status value {value:#x} (edk2-nvidia defines 0x00 normal, 0xff unbootable)")


def parse_slot_number(text: str, what: str) -> int:
    """`nvbootctrl get-current-slot` prints 0 or 1 (some builds print A/B)."""
    word = text.strip()
    if word in ("0", "1"):
        return int(word)
    if word in BOOTNAMES:
        return BOOTNAMES.index(word)
    raise NvbootError(f"{what}: expected a slot 0/1 or A/B, got {word[:80]!r}")


_HEADER = re.compile(r"^\s*(current|active)\s+(?:rootfs|bootloader)\s+slot\s*:\s*(\S+)\s*$", re.IGNORECASE)
_ROW = re.compile(r"^\s*slot\s*:\s*([01])\s*,(.*)$", re.IGNORECASE)
_FIELD = re.compile(r"(retry_count|status)\s*:\s*([A-Za-z0-9_]+)", re.IGNORECASE)


def parse_slots_info(text: str, what: str = "nvbootctrl dump-slots-info") -> SlotsInfo:
    """Parse e.g.::

        Current rootfs slot: A
        Active rootfs slot: B
        num_slots: 2
        slot: 0,             retry_count: 3,             status: normal
        slot: 1,             retry_count: 3,             status: normal
    """
    found: Dict[str, int] = {}
    status: Dict[int, str] = {}
    retries: Dict[int, int] = {}
    for line in text.splitlines():
        header = _HEADER.match(line)
        if header:
            found[header.group(1).lower()] = parse_slot_number(header.group(2), f"{what}: {line.strip()!r}")
            continue
        row = _ROW.match(line)
        if row:
            slot = int(row.group(1))
            for key, value in _FIELD.findall(row.group(2)):
                if key.lower() == "status":
                    status[slot] = value.lower()
                elif value.isdigit():
                    retries[slot] = int(value)
    for key in ("current", "active"):
        if key not in found:
            raise NvbootError(f"{what}: no '{key.capitalize()} ... slot:' line in the output")
    return SlotsInfo(current=found["current"], active=found["active"], status=status, retry_count=retries)


def effective_primary(state: BootState) -> int:
    """The slot the firmware will boot next: the active one unless it is unbootable, then the other."""
    names = (variable_name(0), variable_name(1))
    active_ok = state_word(state.status[state.active], names[state.active]) == "good"
    if active_ok:
        return state.active
    fallback = other(state.active)
    if state_word(state.status[fallback], names[fallback]) == "good":
        return fallback
    raise NvbootError("both RootfsStatusSlotA and RootfsStatusSlotB are unbootable: no primary slot")


def get_state(state: BootState, bootname: str) -> str:
    slot = slot_of(bootname)
    return state_word(state.status[slot], variable_name(slot))


def plan_set_primary(state: BootState, bootname: str) -> List[Action]:
    """Re-enable the slot, then make it the next boot (idempotent)."""
    slot = slot_of(bootname)
    actions: List[Action] = []
    if state.status[slot] != STATUS_NORMAL:
        actions.append(WriteStatus(slot, STATUS_NORMAL))
    actions.append(SetActive(slot))
    return actions


def plan_set_state(state: BootState, bootname: str, word: str, verify_on_good: bool = True) -> List[Action]:
    """good: status normal (+ `verify` when it is the booted slot). bad: status unbootable, and when
    the slot is the next boot and the other one is good, switch the next boot to the other one."""
    slot = slot_of(bootname)
    if word not in ("good", "bad"):
        raise NvbootError(f"state {word!r}: must be 'good' or 'bad'")
    actions: List[Action] = []
    if word == "good":
        if state.status[slot] != STATUS_NORMAL:
            actions.append(WriteStatus(slot, STATUS_NORMAL))
        if verify_on_good and slot == state.current:
            actions.append(Verify())
        return actions
    if state.status[slot] != STATUS_UNBOOTABLE:
        actions.append(WriteStatus(slot, STATUS_UNBOOTABLE))
    if slot == state.active and state.status[other(slot)] == STATUS_NORMAL:
        actions.append(SetActive(other(slot)))
    return actions


def describe(action: Action, nvbootctrl_target: str) -> str:
    """One log line per action (what RAUC's journal shows)."""
    if isinstance(action, WriteStatus):
        return f"{variable_name(action.slot).split('-')[0]} := {action.value:#04x}"
    if isinstance(action, SetActive):
        return f"nvbootctrl {target_args_text(nvbootctrl_target)}set-active-boot-slot {action.slot}"
    return "nvbootctrl verify"


def target_args(target: str) -> List[str]:
    """`-t rootfs` selects the rootfs slot pair; the bootloader chain is nvbootctrl's default."""
    if target not in TARGETS:
        raise NvbootError(f"target {target!r}: must be one of {', '.join(TARGETS)}")
    return ["-t", "rootfs"] if target == "rootfs" else []


def target_args_text(target: str) -> str:
    args = target_args(target)
    return (" ".join(args) + " ") if args else ""


def parse_command(argv: List[str]) -> Tuple[str, Optional[str], Optional[str]]:
    """RAUC's calls: get-primary | set-primary NAME | get-state NAME | set-state NAME good|bad | get-current."""
    usage = "usage: get-primary | set-primary A|B | get-state A|B | set-state A|B good|bad | get-current"
    if not argv:
        raise NvbootError(f"no command given; {usage}")
    cmd, rest = argv[0], argv[1:]
    arity = {"get-primary": 0, "get-current": 0, "set-primary": 1, "get-state": 1, "set-state": 2}
    if cmd not in arity:
        raise NvbootError(f"command {cmd!r} is not known; {usage}")
    if len(rest) != arity[cmd]:
        raise NvbootError(f"{cmd}: expected {arity[cmd]} argument(s), got {len(rest)}; {usage}")
    if rest:
        slot_of(rest[0])
    if cmd == "set-state" and rest[1] not in ("good", "bad"):
        raise NvbootError(f"set-state: state {rest[1]!r} must be 'good' or 'bad'")
    return cmd, (rest[0] if rest else None), (rest[1] if len(rest) > 1 else None)

#!/usr/bin/env python3
"""RAUC `bootloader=custom` backend for Jetson Orin (R36): the I/O shell around nvboot_state.

RAUC runs it as `<backend> get-primary | set-primary A|B | get-state A|B | set-state A|B good|bad |
get-current`; get-* print one word on stdout; every failure prints `endcap-nvboot-backend: <reason>` on
stderr and exits 1 (RAUC then reports the error and changes nothing else). Stdlib only, so it runs on the
device before any Endcap package is importable.

Settings (all optional) come from an INI file, section [nvboot], at /etc/endcap/nvboot.conf or the path in
$ENDCAP_NVBOOT_CONF (the test seam): efivars = directory of efivarfs (default /sys/firmware/efi/efivars),
nvbootctrl = the program (default `nvbootctrl` on PATH), target = rootfs|bootloader (which slot pair
nvbootctrl switches; default rootfs), verify_on_good = yes|no (run `nvbootctrl verify` when the booted slot
is marked good; default yes), timeout_s = seconds per nvbootctrl call (default 30).
"""
from __future__ import annotations

import configparser
import errno
import fcntl
import os
import struct
import subprocess
import sys
from dataclasses import dataclass
from typing import List

sys.path.insert(0, os.path.dirname(os.path.realpath(__file__)))

from nvboot_state import (  # noqa: E402  (after the path set-up above, on purpose)
    BootState,
    NvbootError,
    SetActive,
    Verify,
    WriteStatus,
    bootname_of,
    decode_status,
    describe,
    effective_primary,
    encode_status,
    get_state,
    parse_command,
    parse_slot_number,
    parse_slots_info,
    plan_set_primary,
    plan_set_state,
    target_args,
    variable_name,
)

PROG = "endcap-nvboot-backend"
DEFAULT_CONF = "/etc/endcap/nvboot.conf"
_FS_IOC_GETFLAGS = 0x80086601
_FS_IOC_SETFLAGS = 0x40086602
_FS_IMMUTABLE_FL = 0x00000010
_KEYS = {"efivars", "nvbootctrl", "target", "verify_on_good", "timeout_s"}


@dataclass(frozen=True)
class Settings:
    efivars: str = "/sys/firmware/efi/efivars"
    nvbootctrl: str = "nvbootctrl"
    target: str = "rootfs"
    verify_on_good: bool = True
    timeout_s: float = 30.0


def load_settings(path: str) -> Settings:
    """Read [nvboot] from `path`; a missing file means defaults. Unknown keys and bad values are errors."""
    if not os.path.exists(path):
        return Settings()
    parser = configparser.ConfigParser()
    try:
        parser.read(path, encoding="utf-8")
    except configparser.Error as e:
        raise NvbootError(f"{path}: not a valid INI file: {e}") from e
    extra = set(parser.sections()) - {"nvboot"}
    if extra:
        raise NvbootError(f"{path}: unknown section(s) {', '.join(sorted(extra))}; only [nvboot]")
    if not parser.has_section("nvboot"):
        return Settings()
    section = parser["nvboot"]
    unknown = set(section.keys()) - _KEYS
    if unknown:
        raise NvbootError(f"{path}: [nvboot] unknown key(s) {', '.join(sorted(unknown))}")
    defaults = Settings()
    try:
        verify = section.getboolean("verify_on_good", fallback=defaults.verify_on_good)
    except ValueError as e:
        raise NvbootError(f"{path}: nvboot.verify_on_good: {e}") from e
    try:
        timeout = float(section.get("timeout_s", str(defaults.timeout_s)))
    except ValueError as e:
        raise NvbootError(f"{path}: nvboot.timeout_s: not a number") from e
    if timeout <= 0:
        raise NvbootError(f"{path}: nvboot.timeout_s: must be > 0")
    settings = Settings(
        efivars=section.get("efivars", defaults.efivars),
        nvbootctrl=section.get("nvbootctrl", defaults.nvbootctrl),
        target=section.get("target", defaults.target),
        verify_on_good=verify,
        timeout_s=timeout,
    )
    try:
        target_args(settings.target)
    except NvbootError as e:
        raise NvbootError(f"{path}: nvboot.{e}") from e
    return settings


def nvbootctrl(settings: Settings, args: List[str], with_target: bool = True) -> str:
    argv = [settings.nvbootctrl] + (target_args(settings.target) if with_target else []) + args
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=settings.timeout_s, check=False)
    except FileNotFoundError as e:
        raise NvbootError(f"{settings.nvbootctrl}: not found (nvbootctrl ships in meta-tegra's tegra-redundant-boot)") from e
    except subprocess.TimeoutExpired as e:
        raise NvbootError(f"{' '.join(argv)}: no answer within {settings.timeout_s:g} s") from e
    if proc.returncode != 0:
        detail = (proc.stderr or proc.stdout).strip().splitlines()
        raise NvbootError(f"{' '.join(argv)}: exit {proc.returncode}: {detail[-1] if detail else 'no output'}")
    return proc.stdout


def read_status(settings: Settings, slot: int) -> int:
    name = variable_name(slot)
    path = os.path.join(settings.efivars, name)
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError as e:
        raise NvbootError(
            f"{path}: missing; rootfs A/B is not set up (flash with USE_REDUNDANT_FLASH_LAYOUT_DEFAULT = \"1\")"
        ) from e
    except OSError as e:
        raise NvbootError(f"{path}: cannot read: {e.strerror}") from e
    return decode_status(raw, name.split("-")[0])


def _clear_immutable(path: str) -> None:
    """efivarfs marks variables immutable (chattr +i); clear it before a write. Other filesystems
    (the tests' tmp directory) answer ENOTTY/EOPNOTSUPP: nothing to clear there."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return
    try:
        buf = bytearray(struct.pack("i", 0))
        try:
            fcntl.ioctl(fd, _FS_IOC_GETFLAGS, buf, True)
        except OSError as e:
            if e.errno in (errno.ENOTTY, errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
                return
            raise
        flags = struct.unpack("i", buf)[0]
        if flags & _FS_IMMUTABLE_FL:
            fcntl.ioctl(fd, _FS_IOC_SETFLAGS, struct.pack("i", flags & ~_FS_IMMUTABLE_FL))
    finally:
        os.close(fd)


def write_status(settings: Settings, slot: int, value: int) -> None:
    """One write() of attributes + value, as efivarfs requires (no temp file + rename on efivarfs)."""
    path = os.path.join(settings.efivars, variable_name(slot))
    data = encode_status(value)
    try:
        _clear_immutable(path)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            written = os.write(fd, data)
        finally:
            os.close(fd)
    except OSError as e:
        raise NvbootError(f"{path}: cannot write: {e.strerror}") from e
    if written != len(data):
        raise NvbootError(f"{path}: short write ({written} of {len(data)} bytes)")
    if read_status(settings, slot) != value:
        raise NvbootError(f"{path}: wrote {value:#04x} but reads back something else")


def boot_state(settings: Settings) -> BootState:
    info = parse_slots_info(nvbootctrl(settings, ["dump-slots-info"]))
    current = parse_slot_number(nvbootctrl(settings, ["get-current-slot"]), "nvbootctrl get-current-slot")
    return BootState(current=current, active=info.active, status=(read_status(settings, 0), read_status(settings, 1)))


def apply(settings: Settings, actions: list, label: str) -> None:
    for action in actions:
        print(f"{PROG}: {label}: {describe(action, settings.target)}", file=sys.stderr)
        if isinstance(action, WriteStatus):
            write_status(settings, action.slot, action.value)
        elif isinstance(action, SetActive):
            nvbootctrl(settings, ["set-active-boot-slot", str(action.slot)])
        elif isinstance(action, Verify):
            nvbootctrl(settings, ["verify"], with_target=False)


def run(argv: List[str], settings: Settings) -> str:
    """Carry out one RAUC call; returns what to print on stdout ('' for set-*)."""
    cmd, name, word = parse_command(argv)
    if cmd == "get-current":
        return bootname_of(parse_slot_number(nvbootctrl(settings, ["get-current-slot"]), "nvbootctrl get-current-slot"))
    state = boot_state(settings)
    if cmd == "get-primary":
        return bootname_of(effective_primary(state))
    if cmd == "get-state":
        return get_state(state, name)
    if cmd == "set-primary":
        apply(settings, plan_set_primary(state, name), f"set-primary {name}")
        return ""
    apply(settings, plan_set_state(state, name, word, settings.verify_on_good), f"set-state {name} {word}")
    return ""


def main(argv: List[str]) -> int:
    try:
        settings = load_settings(os.environ.get("ENDCAP_NVBOOT_CONF", DEFAULT_CONF))
        out = run(argv, settings)
    except NvbootError as e:
        print(f"{PROG}: {e}", file=sys.stderr)
        return 1
    if out:
        print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

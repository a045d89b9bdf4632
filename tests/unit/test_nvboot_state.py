"""Pure decisions of the Orin RAUC custom backend (ota/rauc/jetson/nvboot_state.py)."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

_PATH = Path(__file__).resolve().parents[2] / "ota" / "rauc" / "jetson" / "nvboot_state.py"


def _load():
    spec = importlib.util.spec_from_file_location("nvboot_state", _PATH)
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("nvboot_state", module)
    spec.loader.exec_module(module)
    return module


ns = _load()
N, U = ns.STATUS_NORMAL, ns.STATUS_UNBOOTABLE

ROOTFS_INFO = """Current rootfs slot: A
Active rootfs slot: B
num_slots: 2
slot: 0,             retry_count: 3,             status: normal
slot: 1,             retry_count: 0,             status: unbootable
"""


def state(current=0, active=0, a=N, b=N):
    return ns.BootState(current=current, active=active, status=(a, b))


def test_parse_rootfs_slots_info():
    info = ns.parse_slots_info(ROOTFS_INFO)
    assert (info.current, info.active) == (0, 1)
    assert info.status == {0: "normal", 1: "unbootable"}
    assert info.retry_count == {0: 3, 1: 0}


def test_parse_bootloader_view_and_numeric_slots():
    text = "Current version: 36.5.0\nCapsule update status: 0\nCurrent bootloader slot: 1\nActive bootloader slot: 0\n"
    info = ns.parse_slots_info(text)
    assert (info.current, info.active) == (1, 0)


@pytest.mark.parametrize("text,needle", [
    ("Current rootfs slot: A\n", "Active"),
    ("Active rootfs slot: A\n", "Current"),
    ("Current rootfs slot: C\nActive rootfs slot: A\n", "'C'"),
    ("", "Current"),
])
def test_parse_slots_info_refuses_incomplete_output(text, needle):
    with pytest.raises(ns.NvbootError, match=needle):
        ns.parse_slots_info(text)


def test_status_roundtrip_and_layout():
    raw = ns.encode_status(U)
    assert raw == bytes([7, 0, 0, 0, 0xFF, 0, 0, 0])
    assert ns.decode_status(raw, "RootfsStatusSlotA") == U
    assert ns.decode_status(ns.encode_status(N), "x") == N


def test_decode_refuses_wrong_length_naming_the_variable():
    with pytest.raises(ns.NvbootError, match=r"RootfsStatusSlotB: expected 8 bytes .* got 5"):
        ns.decode_status(b"\x07\x00\x00\x00\x00", "RootfsStatusSlotB")


def test_encode_only_known_values():
    with pytest.raises(ns.NvbootError, match="0x3"):
        ns.encode_status(3)


def test_unknown_status_value_is_an_error_not_a_guess():
    with pytest.raises(ns.NvbootError, match=r"RootfsStatusSlotA.*unknown status value 0x2"):
        ns.get_state(state(a=2), "A")


def test_variable_names_use_the_nvidia_guid():
    assert ns.variable_name(0) == "RootfsStatusSlotA-781e084c-a330-417c-b678-38e696380cb9"
    assert ns.variable_name(1).startswith("RootfsStatusSlotB-")


@pytest.mark.parametrize("argv,needle", [
    ([], "no command"),
    (["frobnicate"], "'frobnicate' is not known"),
    (["get-state"], "expected 1 argument"),
    (["set-primary", "C"], "bootname 'C'"),
    (["set-state", "A", "meh"], "'meh' must be 'good' or 'bad'"),
    (["get-primary", "A"], "expected 0 argument"),
])
def test_parse_command_refuses_bad_calls(argv, needle):
    with pytest.raises(ns.NvbootError, match=needle):
        ns.parse_command(argv)


def test_parse_command_accepts_rauc_calls():
    assert ns.parse_command(["set-state", "B", "bad"]) == ("set-state", "B", "bad")
    assert ns.parse_command(["get-current"]) == ("get-current", None, None)


def test_primary_is_active_slot_when_bootable():
    assert ns.effective_primary(state(active=1)) == 1


def test_primary_falls_back_like_the_firmware_when_active_is_unbootable():
    assert ns.effective_primary(state(active=1, b=U)) == 0


def test_no_primary_when_both_unbootable():
    with pytest.raises(ns.NvbootError, match="both"):
        ns.effective_primary(state(a=U, b=U))


def test_set_primary_re_enables_then_activates():
    assert ns.plan_set_primary(state(b=U), "B") == [ns.WriteStatus(1, N), ns.SetActive(1)]


def test_set_primary_on_a_good_slot_only_activates():
    assert ns.plan_set_primary(state(), "B") == [ns.SetActive(1)]


def test_mark_good_booted_slot_verifies():
    assert ns.plan_set_state(state(current=1, active=1, b=U), "B", "good") == [ns.WriteStatus(1, N), ns.Verify()]
    assert ns.plan_set_state(state(current=1, active=1), "B", "good", verify_on_good=False) == []


def test_mark_good_other_slot_does_not_verify():
    assert ns.plan_set_state(state(current=0, b=U), "B", "good") == [ns.WriteStatus(1, N)]


def test_mark_bad_inactive_slot_only_writes():
    # RAUC's first step of an install: the target slot is marked bad before it is written.
    assert ns.plan_set_state(state(current=0, active=0), "B", "bad") == [ns.WriteStatus(1, U)]


def test_mark_bad_next_boot_slot_switches_to_the_good_one():
    assert ns.plan_set_state(state(current=1, active=1), "B", "bad") == [ns.WriteStatus(1, U), ns.SetActive(0)]


def test_mark_bad_never_switches_to_an_unbootable_slot():
    assert ns.plan_set_state(state(current=1, active=1, a=U), "B", "bad") == [ns.WriteStatus(1, U)]


def test_mark_bad_is_idempotent():
    assert ns.plan_set_state(state(active=0, b=U), "B", "bad") == []


def test_target_args():
    assert ns.target_args("rootfs") == ["-t", "rootfs"]
    assert ns.target_args("bootloader") == []
    with pytest.raises(ns.NvbootError, match="target 'uefi'"):
        ns.target_args("uefi")

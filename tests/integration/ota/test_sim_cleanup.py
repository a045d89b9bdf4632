"""The simulated device's helpers (endcap.sim.dbus, endcap.sim.devota) leave no fds, directories or processes behind."""
from __future__ import annotations

import gc
import os
import warnings
from pathlib import Path

import pytest

from endcap.sim import devota
from endcap.sim.dbus import start_dbus

BROKEN_POLICY = "<policy context='default'><allow"  # not XML: dbus-daemon refuses the config and exits


def open_fds() -> set[str]:
    """This process's open descriptors, by number and target."""
    out = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            out.add(f"{fd}->{os.readlink(f'/proc/self/fd/{fd}')}")
        except FileNotFoundError:  # the descriptor listdir itself used
            pass
    return out


@pytest.fixture
def no_resource_warnings():
    """Fail if anything in the test left a file object to be closed by the garbage collector."""
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always", ResourceWarning)
        yield
        gc.collect()
    assert [str(w.message) for w in seen if issubclass(w.category, ResourceWarning)] == []


def test_bus_start_stop_leaves_no_fds_and_removes_its_own_dir(no_resource_warnings):
    start_dbus().stop()  # warm up: imports, selectors ...
    gc.collect()
    before = open_fds()
    for _ in range(3):
        bus = start_dbus()
        assert (bus.directory / "bus").exists() and bus.owns_directory
        bus.stop()
        assert bus.proc.returncode is not None
        assert not bus.directory.exists()
        bus.stop()  # idempotent
    gc.collect()
    assert open_fds() == before


def test_bus_never_removes_a_callers_directory(tmp_path, no_resource_warnings):
    d = tmp_path / "busdir"
    d.mkdir()
    (d / "keep.txt").write_text("mine")
    bus = start_dbus(directory=d)
    assert not bus.owns_directory
    bus.stop()
    assert (d / "keep.txt").read_text() == "mine" and (d / "dbus.log").exists()


def test_failed_start_keeps_callers_directory_and_leaks_nothing(tmp_path, no_resource_warnings):
    d = tmp_path / "busdir"
    d.mkdir()
    (d / "keep.txt").write_text("mine")
    before = open_fds()
    with pytest.raises(RuntimeError, match="dbus-daemon exited"):
        start_dbus(directory=d, policy=BROKEN_POLICY)
    assert (d / "keep.txt").read_text() == "mine"
    gc.collect()
    assert open_fds() == before


def test_failed_start_removes_its_own_temp_dir(no_resource_warnings):
    prefix = f"dbus-fail-{os.getpid()}-"
    with pytest.raises(RuntimeError, match="dbus-daemon exited"):
        start_dbus(prefix=prefix, policy=BROKEN_POLICY)
    assert list(Path("/tmp").glob(prefix + "*")) == []


def test_device_restarts_leave_no_fds(tmp_path, fleet_test_pki, no_resource_warnings):
    dev = devota.make_device(tmp_path / "device", fleet_test_pki.keyring, "endcap-test-x86_64")
    try:
        dev.start()
        dev.stop()
        gc.collect()
        before = open_fds()
        for _ in range(3):  # one log file per start; the parent keeps none of them open
            assert dev.reboot() in ("A", "B")
        dev.stop()
        gc.collect()
        assert open_fds() == before
        assert len(list((tmp_path / "device").glob("rauc-*.log"))) == 4
    finally:
        devota.stop(dev)
    assert dev.bus.proc.returncode is not None and not dev.bus.directory.exists()


def test_failed_device_start_stops_its_bus(tmp_path, fleet_test_pki, no_resource_warnings):
    dev = devota.make_device(tmp_path / "device", fleet_test_pki.keyring, "endcap-test-x86_64")
    dev.conf.write_text("not a rauc config [[\n")
    with pytest.raises(RuntimeError, match="rauc service exited"):
        devota.start(dev)
    assert dev.proc is None
    assert dev.bus.proc.returncode is not None  # the bus was stopped, not leaked
    assert not dev.bus.directory.exists()

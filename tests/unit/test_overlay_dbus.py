"""The overlay's RAUC D-Bus policy on a real dbus-daemon: only the updater's user (and root) may call RAUC.

The bus reads Debian's permissive /usr/share/dbus-1/system.d/de.pengutronix.rauc.conf first and the
overlay's /etc/dbus-1/system.d file after it, as the system bus does. Clients run as real host users:
``nobody`` stands in for endcap-updater (the policy's user name is substituted), ``daemon`` for any
other service user. The name's owner is a real GDBus connection, which answers Peer.Ping itself.
"""
from __future__ import annotations

import os
import select
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from endcap.sim.dbus import start_dbus

REPO = Path(__file__).resolve().parents[2]
OVERLAY_POLICY = REPO / "overlay/etc/dbus-1/system.d/de.pengutronix.rauc.conf"
DEBIAN_POLICY = Path("/usr/share/dbus-1/system.d/de.pengutronix.rauc.conf")
RAUC = "de.pengutronix.rauc"

# What Debian's /usr/share/dbus-1/system.conf says before it includes system.d (the relevant part).
SYSTEM_DEFAULTS = """<policy context="default">
    <allow user="*"/>
    <deny own="*"/>
    <deny send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Introspectable"/>
  </policy>"""

OWNER = """
import sys
from gi.repository import Gio, GLib
conn = Gio.bus_get_sync(Gio.BusType.SYSTEM)
loop = GLib.MainLoop()
def acquired(*a):
    print("owned", flush=True)
def lost(*a):
    print("lost", flush=True); loop.quit()
Gio.bus_own_name_on_connection(conn, sys.argv[1], Gio.BusNameOwnerFlags.NONE, acquired, lost)
loop.run()
"""


def _bus(tmp_path: Path, with_overlay: bool):
    includes = [f"<include>{DEBIAN_POLICY}</include>"]
    if with_overlay:
        ours = tmp_path / "rauc-overlay.conf"
        ours.write_text(OVERLAY_POLICY.read_text().replace('user="endcap-updater"', 'user="nobody"'))
        includes.append(f"<include>{ours}</include>")
    return start_dbus(prefix="dbus-rauc-", policy=SYSTEM_DEFAULTS + "\n  " + "\n  ".join(includes))


def _own(bus) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", OWNER, RAUC], stdout=subprocess.PIPE, text=True,
                            env=dict(os.environ, **bus.env))
    ready, _, _ = select.select([proc.stdout], [], [], 30)
    assert ready, "the RAUC stand-in did not report owning its name within 30 s"
    assert proc.stdout.readline().strip() == "owned"
    return proc


def _ping_as(bus, user: str | None) -> subprocess.CompletedProcess:
    os.chmod(bus.directory, 0o755)  # let unprivileged users reach the bus socket
    return subprocess.run(["dbus-send", "--system", "--print-reply", f"--dest={RAUC}", "/",
                           "org.freedesktop.DBus.Peer.Ping"], capture_output=True, text=True, timeout=30,
                          env=dict(os.environ, **bus.env), user=user)


@pytest.fixture
def rauc_bus(tmp_path):
    started = []

    def make(with_overlay: bool):
        bus = _bus(tmp_path, with_overlay)
        started.append(bus)
        owner = _own(bus)
        started.append(owner)
        return bus

    yield make
    for thing in reversed(started):
        if isinstance(thing, subprocess.Popen):
            if thing.poll() is None:
                os.kill(thing.pid, signal.SIGTERM)
                thing.wait(timeout=10)
        else:
            thing.stop()
            shutil.rmtree(thing.directory, ignore_errors=True)


def test_debian_policy_alone_lets_any_user_call_rauc(rauc_bus):
    bus = rauc_bus(with_overlay=False)
    r = _ping_as(bus, "daemon")
    assert r.returncode == 0, r.stderr


def test_overlay_policy_denies_other_users(rauc_bus):
    bus = rauc_bus(with_overlay=True)
    r = _ping_as(bus, "daemon")
    assert r.returncode != 0
    assert "AccessDenied" in r.stderr, r.stderr


def test_overlay_policy_allows_the_updater_user_and_root(rauc_bus):
    bus = rauc_bus(with_overlay=True)
    for user in ("nobody", None):
        r = _ping_as(bus, user)
        assert r.returncode == 0, f"{user}: {r.stderr}"

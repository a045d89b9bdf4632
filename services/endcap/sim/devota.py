"""A simulated A/B device for dev runs and tests (dev hosts only): a real ``rauc service`` on a private bus.

``make_device`` writes a RAUC system.conf (``bootloader=grub`` on a real grubenv made with ``grub-editenv``,
slots ``rootfs.0``/A and ``rootfs.1``/B on ext4 image files, data directory and mount prefix under ``root``,
the given keyring, the updater's pre-install handler) and starts a private dbus-daemon; ``RaucDevice.start``
runs ``rauc service --override-boot-slot=<booted>`` and waits until ``de.pengutronix.rauc`` is owned on the
bus (an early exit is an error with rauc's log). ``RaucDevice.reboot`` plays a reboot: stop rauc, run GRUB's
documented A/B script (``endcap.updater.grub.boot``) on the grubenv, save the flags GRUB saves, start rauc
again on the chosen slot. RAUC 1.8 writes plain bundles straight into regular files, so no loop devices.
Every process is stopped by PID.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from endcap.sim.dbus import DBusDaemon, start_dbus
from endcap.updater import grub

SLOT_BYTES = 8 << 20


def make_rootfs_image(path: Path, label: str, size: int = SLOT_BYTES) -> Path:
    """An ext4 image holding one file naming it (so tests can tell which image a slot holds)."""
    content = path.parent / (path.name + ".d")
    (content / "etc").mkdir(parents=True, exist_ok=True)
    (content / "etc" / "endcap-release").write_text(label + "\n")
    with open(path, "wb") as f:
        f.truncate(size)
    subprocess.run(["mkfs.ext4", "-q", "-F", "-O", "^metadata_csum_seed", "-d", str(content), str(path)], check=True)
    shutil.rmtree(content)
    return path


@dataclass
class RaucDevice:
    """One simulated device: bus, slots, grubenv, rauc service; ``booted`` is the slot it "runs"."""

    root: Path
    bus: DBusDaemon
    conf: Path
    grubenv: Path
    floor_file: Path
    slots: dict[str, Path]
    booted: str = "A"
    proc: Optional[subprocess.Popen] = None
    log: Path = field(default=Path("/dev/null"))

    @property
    def env(self) -> dict[str, str]:
        return dict(os.environ, **self.bus.env)

    def start(self, timeout_s: float = 20.0) -> None:
        self.log = self.root / f"rauc-{time.monotonic_ns()}.log"
        with open(self.log, "wb") as log:  # the child keeps its own copy; ours closes at once
            self.proc = subprocess.Popen(["rauc", "service", f"--conf={self.conf}",
                                          f"--override-boot-slot={self.booted}"],
                                         env=self.env, stdout=log, stderr=subprocess.STDOUT)
        wait_for_name(self, "de.pengutronix.rauc", timeout_s)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, sig)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        self.proc = None

    def read_env(self) -> dict[str, str]:
        out = subprocess.run(["grub-editenv", str(self.grubenv), "list"], capture_output=True, text=True, check=True)
        return grub.parse_env(out.stdout)

    def reboot(self) -> str:
        """Stop rauc, let "GRUB" choose from the grubenv, save its TRY flags, start rauc on that slot."""
        self.stop()
        choice = grub.boot(self.read_env())
        subprocess.run(["grub-editenv", str(self.grubenv), "set", f"A_TRY={choice.env['A_TRY']}",
                        f"B_TRY={choice.env['B_TRY']}"], check=True)
        self.booted = choice.slot
        self.start()
        return choice.slot

    def primary(self) -> str:
        """The slot GRUB would boot next (without changing anything)."""
        return grub.boot(self.read_env()).slot

    def slot_label(self, bootname: str) -> str:
        out = subprocess.run(["debugfs", "-R", "cat /etc/endcap-release", str(self.slots[bootname])],
                             capture_output=True, text=True)
        return out.stdout.strip()


def wait_for_name(dev: RaucDevice, name: str, timeout_s: float) -> None:
    """Block until ``name`` is owned on the bus; fail with rauc's log if the process exits first."""
    deadline = time.monotonic() + timeout_s
    while True:
        assert dev.proc is not None
        if dev.proc.poll() is not None:
            raise RuntimeError(f"rauc service exited with {dev.proc.returncode}: {dev.log.read_text()}")
        r = subprocess.run(["dbus-send", "--system", "--print-reply", "--dest=org.freedesktop.DBus",
                            "/org/freedesktop/DBus", "org.freedesktop.DBus.NameHasOwner", f"string:{name}"],
                           env=dev.env, capture_output=True, text=True, timeout=10)
        if "boolean true" in r.stdout:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"{name} not on the bus within {timeout_s} s: {dev.log.read_text()}")
        try:  # block on the process (not a sleep): returns early if it exits
            dev.proc.wait(timeout=0.05)
        except subprocess.TimeoutExpired:
            pass


def system_conf(root: Path, keyring: Path, slots: dict[str, Path], grubenv: Path, handler: Path,
                compatible: str) -> str:
    return (f"[system]\ncompatible={compatible}\nbootloader=grub\ngrubenv={grubenv}\n"
            f"data-directory={root / 'data'}\nmountprefix={root / 'mnt'}\n\n"
            f"[keyring]\npath={keyring}\n\n[handlers]\npre-install={handler}\n\n"
            f"[slot.rootfs.0]\ndevice={slots['A']}\ntype=ext4\nbootname=A\n\n"
            f"[slot.rootfs.1]\ndevice={slots['B']}\ntype=ext4\nbootname=B\n")


def make_device(root: Path, keyring: Path, compatible: str, bus_dir: Optional[Path] = None) -> RaucDevice:
    root.mkdir(parents=True, exist_ok=True)
    for d in ("data", "mnt"):
        (root / d).mkdir(exist_ok=True)
    slots = {"A": make_rootfs_image(root / "slot-a.img", "factory A"),
             "B": make_rootfs_image(root / "slot-b.img", "factory B")}
    grubenv = root / "grubenv"
    subprocess.run(["grub-editenv", str(grubenv), "create"], check=True)
    subprocess.run(["grub-editenv", str(grubenv), "set", *(f"{k}={v}" for k, v in grub.initial_env().items())],
                   check=True)
    floor_file = root / "floor.json"
    handler = root / "pre-install"
    handler.write_text(f"#!/bin/sh\nexec {sys.executable} -m endcap.updater.preinstall --floor-file {floor_file}\n")
    handler.chmod(0o755)
    conf = root / "system.conf"
    conf.write_text(system_conf(root, keyring, slots, grubenv, handler, compatible))
    bus = start_dbus(directory=bus_dir)
    return RaucDevice(root, bus, conf, grubenv, floor_file, slots)


DEV_COMPATIBLE = "endcap-dev"


def bus_dir(state_dir: Path) -> Path:
    """Where the dev run's private bus listens (``<dir>/bus``): fixed, so the config can name it."""
    return state_dir / "ota-device" / "dbus"


def prepare(state_dir: Path) -> RaucDevice:
    """``endcap run``'s A/B device: a throwaway fleet PKI (the NOC side, under ``state_dir/ota-pki``) whose root
    is the keyring of a fresh simulated device under ``state_dir/ota-device``, with rauc running on slot A.
    A bundle signed by that PKI (``endcap-ota bundle ... --pki <state>/ota-pki``) installs through the
    updater or the maintenance page's upload."""
    from endcap_ota.pki import create_pki, load_pki

    pki_dir = state_dir / "ota-pki"
    pki = load_pki(pki_dir) if (pki_dir / "keyring.pem").exists() else create_pki(pki_dir)
    dev = make_device(state_dir / "ota-device", pki.keyring, DEV_COMPATIBLE, bus_dir=bus_dir(state_dir))
    start(dev)
    return dev


def start(dev: RaucDevice, timeout_s: float = 20.0) -> None:
    """Start ``dev``'s rauc service; if that fails, stop rauc and the device's bus before re-raising."""
    try:
        dev.start(timeout_s)
    except BaseException:
        stop(dev)
        raise


def stop(dev: RaucDevice) -> None:
    """Stop rauc and the bus (by PID); the bus directory goes only if ``start_dbus`` made it."""
    dev.stop()
    dev.bus.stop()

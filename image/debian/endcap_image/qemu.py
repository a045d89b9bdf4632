"""QEMU for the dev image: the command line (pure) and a running guest (serial log, QMP, swtpm).

q35 + OVMF, TCG (KVM does not work on these machines), serial console, i6300esb watchdog that resets,
swtpm as the guest's TPM (/dev/tpmrm0), user-mode network with the signage and maintenance ports
forwarded to the host's loopback. ``-no-reboot``: a guest reboot ends QEMU; the caller starts it again.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

OVMF_CODE = Path("/usr/share/OVMF/OVMF_CODE_4M.fd")
OVMF_VARS = Path("/usr/share/OVMF/OVMF_VARS_4M.fd")
GUEST_PORTS = {"signage": 8470, "maint": 8443}
# the NIC sits in a fixed PCI slot, so its predictable name stays the same whatever media disks come before
# it: enp0s16 (the dev image's [maint] network_interface)
NIC_PCI_SLOT = 0x10
NIC_NAME = f"enp0s{NIC_PCI_SLOT}"


@dataclass(frozen=True)
class QemuSpec:
    disk: Path  # a qcow2 overlay (or raw) the guest writes
    vars: Path  # this guest's copy of OVMF_VARS
    serial: Path  # the console: a unix socket QEMU listens on (it waits for the client before starting)
    qmp: Path  # QMP unix socket
    tpm_sock: Path | None  # swtpm's unixio control channel, or None for no TPM
    forwards: dict[int, int] = field(default_factory=dict)  # host port on 127.0.0.1 -> guest port
    memory_mib: int = 2048
    cpus: int = 2
    media: tuple[Path, ...] = ()  # extra read-only raw disks (vdb, vdc, ...): provisioning media
    interactive: bool = False  # serial on stdio instead of a file
    no_reboot: bool = True


def command(spec: QemuSpec) -> list[str]:
    """The qemu-system-x86_64 argv for ``spec``."""
    fmt = "qcow2" if spec.disk.suffix == ".qcow2" else "raw"
    fwd = "".join(f",hostfwd=tcp:127.0.0.1:{h}-:{g}" for h, g in sorted(spec.forwards.items()))
    argv = ["qemu-system-x86_64", "-machine", "q35", "-accel", "tcg,thread=multi", "-cpu", "max",
            "-smp", str(spec.cpus), "-m", str(spec.memory_mib), "-nographic", "-nodefaults",
            "-drive", f"if=pflash,format=raw,unit=0,readonly=on,file={OVMF_CODE}",
            "-drive", f"if=pflash,format=raw,unit=1,file={spec.vars}",
            "-drive", f"if=virtio,format={fmt},file={spec.disk},cache=unsafe,discard=unmap",
            *[a for m in spec.media for a in ("-drive", f"if=virtio,format=raw,readonly=on,file={m}")],
            "-netdev", f"user,id=n0{fwd}", "-device", f"virtio-net-pci,netdev=n0,addr={NIC_PCI_SLOT:#x}",
            "-device", "virtio-rng-pci",
            "-device", "i6300esb", "-action", "watchdog=reset",
            "-qmp", f"unix:{spec.qmp},server=on,wait=off"]
    if spec.interactive:
        argv += ["-serial", "mon:stdio"]
    else:
        argv += ["-chardev", f"socket,id=ser0,path={spec.serial},server=on,wait=on", "-serial", "chardev:ser0"]
    if spec.tpm_sock is not None:
        argv += ["-chardev", f"socket,id=chrtpm,path={spec.tpm_sock}",
                 "-tpmdev", "emulator,id=tpm0,chardev=chrtpm", "-device", "tpm-crb,tpmdev=tpm0"]
    if spec.no_reboot:
        argv.append("-no-reboot")
    return argv


def overlay_disk(base: Path, dest: Path) -> Path:
    """The guest's own copy of the (cached, never written) base disk: a sparse copy, ~1 GB allocated.

    (A qcow2 overlay would be cheaper but needs qemu-img, which qemu-system-x86 does not bring.)
    """
    subprocess.run(["cp", "--sparse=always", "--reflink=auto", str(base), str(dest)], check=True, capture_output=True)
    return dest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class GuestTpm:
    """A swtpm whose TPM QEMU attaches through ``--ctrl type=unixio`` (state kept in ``state_dir``)."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.sock = state_dir / "swtpm-qemu.sock"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout_s: float = 20.0) -> "GuestTpm":
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.sock.unlink(missing_ok=True)
        self.proc = subprocess.Popen(
            ["swtpm", "socket", "--tpm2", "--tpmstate", f"dir={self.state_dir}",
             "--ctrl", f"type=unixio,path={self.sock}", "--log", f"file={self.state_dir / 'swtpm.log'},level=1",
             ], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + timeout_s
        while not self.sock.exists():
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"swtpm: {self.sock} did not appear within {timeout_s} s")
            try:
                rc = self.proc.wait(timeout=0.05)
                raise RuntimeError(f"swtpm exited with {rc}; see {self.state_dir / 'swtpm.log'}")
            except subprocess.TimeoutExpired:
                pass
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)


def vars_copy(dest: Path) -> Path:
    shutil.copyfile(OVMF_VARS, dest)
    return dest

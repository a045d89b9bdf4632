"""The QEMU command line of the dev image (pure) and the firmware files it names (real paths)."""
from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "image" / "debian"))

from endcap_image import qemu  # noqa: E402


def _spec(**kw):
    base = dict(disk=Path("/x/disk.img"), vars=Path("/x/vars.fd"), serial=Path("/x/serial.sock"), qmp=Path("/x/qmp.sock"),
                tpm_sock=Path("/x/tpm.sock"), forwards={18470: 8470, 18443: 8443})
    base.update(kw)
    return qemu.QemuSpec(**base)


def test_command_has_the_facts_of_design_5():
    argv = qemu.command(_spec())
    joined = " ".join(argv)
    assert argv[0] == "qemu-system-x86_64"
    assert "-machine q35" in joined and "-accel tcg" in joined  # KVM does not work on these machines
    assert "-device i6300esb" in joined and "-action watchdog=reset" in joined
    assert "-tpmdev emulator,id=tpm0,chardev=chrtpm" in joined and "tpm-crb,tpmdev=tpm0" in joined
    assert "socket,id=chrtpm,path=/x/tpm.sock" in joined
    assert "hostfwd=tcp:127.0.0.1:18470-:8470" in joined and "hostfwd=tcp:127.0.0.1:18443-:8443" in joined
    assert argv[-1] == "-no-reboot"
    assert f"file={qemu.OVMF_CODE}" in joined and "readonly=on" in joined
    assert "socket,id=ser0,path=/x/serial.sock,server=on,wait=on" in joined


def test_media_are_read_only_extra_disks_and_tpm_is_optional():
    argv = qemu.command(_spec(media=(Path("/x/m.ext4"),), tpm_sock=None, no_reboot=False))
    joined = " ".join(argv)
    assert "if=virtio,format=raw,readonly=on,file=/x/m.ext4" in joined
    assert joined.index("file=/x/disk.img") < joined.index("file=/x/m.ext4")  # the system disk stays vda
    assert "tpm" not in joined and "-no-reboot" not in argv


def test_interactive_uses_the_terminal():
    argv = qemu.command(_spec(interactive=True))
    assert argv[argv.index("-serial") + 1] == "mon:stdio"


def test_firmware_files_exist():
    assert qemu.OVMF_CODE.is_file() and qemu.OVMF_VARS.is_file()


def test_free_port_is_bindable():
    import socket

    port = qemu.free_port()
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))


def test_the_nic_has_the_name_the_dev_image_configures_whatever_media_come_first():
    import tomllib

    dev = tomllib.loads((REPO / "image/debian/overlay-dev/etc/endcap/endcap.toml").read_text())
    for media in ((), (Path("/x/a.ext4"),), (Path("/x/a.ext4"), Path("/x/b.ext4"))):
        argv = qemu.command(_spec(media=media))
        nic = [argv[i + 1] for i, a in enumerate(argv) if a == "-device" and argv[i + 1].startswith("virtio-net")]
        assert nic == ["virtio-net-pci,netdev=n0,addr=0x10"], nic
    assert qemu.NIC_NAME == dev["maint"]["network_interface"] == "enp0s16"

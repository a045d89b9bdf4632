"""A/B on the dev image with the real RAUC, GRUB script, grubenv and data partition (no updater yet):
v1 (slot A) installs a v2 verity bundle into B, reboots into B, B is marked good and the data
partition kept its contents; B marked bad falls back to A by itself at the next boot.

The updater service (#7) drives the same D-Bus API and the health gate; these tests prove the
image's half of the contract: bundle format, keyring, pre-install handler, slots, boot switching.
The updater is stopped first: it rightly undoes a primary-slot switch it did not record (an install
that did not go through it), which is what this test does on purpose.
"""
from __future__ import annotations

import re

import pytest

from tests.system.conftest import BOOT_TIMEOUT_S, bundle_for, bundle_media

# boots under TCG on a busy 2-core host: minutes, bounded
pytestmark = pytest.mark.timeout(1800)

MEDIA = "/run/endcap-media"
FLOOR = '{"version": "1.0.0", "epoch": 0}'


def _grubenv(guest) -> dict[str, str]:
    out = guest.check("grub-editenv /boot/efi/EFI/endcap/grubenv list")
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def _login_without_updater(guest) -> None:
    guest.login(BOOT_TIMEOUT_S)
    guest.check("systemctl stop endcap-updater.service", timeout_s=120)


def _reboot(guest) -> None:
    guest.send("systemctl reboot\n")
    guest.wait_exit(300)  # -no-reboot: the guest's reboot ends QEMU
    guest.boot()
    _login_without_updater(guest)


def test_v1_to_v2_into_b_then_marked_bad_back_to_a(guest, dev_image, tmp_path):
    bundle = bundle_for(dev_image, "2.0.0")
    guest.media = (bundle_media(bundle, tmp_path),)
    guest.boot()
    _login_without_updater(guest)
    assert "rauc.slot=A" in guest.check("cat /proc/cmdline")
    # what the updater keeps in sync, and what the data partition must keep across the update
    guest.check(f"echo '{FLOOR}' > /var/lib/endcap/updater/floor.json && echo v1-was-here > /data/endcap/marker")

    # a bundle not newer than the running firmware is refused by the pre-install handler
    guest.check("echo '{\"version\": \"2.0.0\", \"epoch\": 0}' > /var/lib/endcap/updater/floor.json")
    guest.check(f"mkdir -p {MEDIA} && mount -o ro /dev/vdb {MEDIA}")
    refused = guest.sh(f"rauc install {MEDIA}/{bundle.name}", timeout_s=900)
    assert refused.rc != 0 and re.search(r"pre-install|handler", refused.out, re.I), refused.out
    guest.check(f"echo '{FLOOR}' > /var/lib/endcap/updater/floor.json")

    out = guest.check(f"rauc install {MEDIA}/{bundle.name}", timeout_s=1200)
    assert "succeeded" in out, out
    env = _grubenv(guest)
    assert env["ORDER"].split()[0] == "B" and env["B_OK"] == "1" and env["B_TRY"] == "0", env

    _reboot(guest)
    assert "rauc.slot=B" in guest.check("cat /proc/cmdline")
    status = guest.check("rauc status --detailed --output-format=json-pretty", timeout_s=120)
    assert re.search(r'"booted"\s*:\s*"B"', status), status
    assert guest.check("cat /data/endcap/marker").strip() == "v1-was-here"
    # GRUB set B_TRY=1 at this boot; the updater, finding no update of its own pending, may already have
    # cleared it (it marks the committed slot good at every start); here the slot is confirmed by hand.
    guest.check("rauc status mark-good")
    assert _grubenv(guest)["B_TRY"] == "0"

    # B goes bad (the updater's health gate failed): the next boot is A again, data still there
    guest.check("rauc status mark-bad")
    _reboot(guest)
    assert "rauc.slot=A" in guest.check("cat /proc/cmdline")
    assert guest.check("cat /data/endcap/marker").strip() == "v1-was-here"

"""The full A/B update cycle on the dev image, driven through the guest's updater service (its
``install_file`` RPC, as the maintenance page hands it an uploaded bundle), with the real RAUC, GRUB A/B
script, grubenv, health gate, TPM and data partition. One provisioned guest goes through, in order:

1. power cut (QEMU killed) in the middle of installing v2 -> slot A (v1) boots, nothing half-done remains;
2. v2 again -> installed into B -> reboot -> B boots -> every service healthy -> B marked good (committed);
3. v3, whose POS link is broken -> boots in A -> health gate fails -> marked bad -> back on B by itself;
4. v4, whose init exits at once -> kernel panic -> GRUB falls back to B by itself -> recorded as rolled back;
5. RAUC's own pre-install handler still refuses a bundle that is not newer (the updater bypassed);
and through all of it the data partition (model store, POS database, updater history) and the TPM-anchored
state survive: a quote made inside the guest verifies on the host with the key recorded at enrolment.

The tests are steps of one story and share the guest: they run in file order on one xdist worker
(``make test`` distributes by file, ``--dist loadfile``).
"""
from __future__ import annotations

import re
import secrets

import pytest
from endcap_image import provision, variants
from endcap_image.updates import install_bundle, wait_status
from endcap_image.guest import Guest

from endcap.trust.attest import verify_quote
from tests.system.conftest import BOOT_TIMEOUT_S

# boots under TCG on a busy 2-core host: minutes per step, bounded
pytestmark = pytest.mark.timeout(2400)

BUNDLES = "/run/endcap-bundles"
MARKER = "/data/endcap/marker"
GRUBENV = "/boot/efi/EFI/endcap/grubenv"  # on the ESP; RAUC's grub backend edits it
HEALTH_S = 600  # the dev image's confirm_timeout_s: v2's services must be healthy within it
PCR = 23  # the dev image's trust.pcr


class Cycle:
    """The guest and what the host knows about it (its enrolment, the bundles on its media)."""

    def __init__(self, guest: Guest, enrolment, bundles: dict[str, str]) -> None:
        self.guest, self.enrolment, self.bundles = guest, enrolment, bundles
        self.model: list[str] = []  # [name, version] of the model installed on v1

    def login(self) -> None:
        self.guest.login(BOOT_TIMEOUT_S)
        self.guest.check(f"mkdir -p {BUNDLES} && (mountpoint -q {BUNDLES} || mount -o ro /dev/vdc {BUNDLES})")

    def boot(self) -> None:
        self.guest.boot()
        self.login()

    def reboot_by_itself(self, timeout_s: float = 900) -> None:
        """The guest reboots on its own (updater, kernel panic): QEMU ends (-no-reboot); start it again."""
        self.guest.wait_exit(timeout_s)
        self.guest.boot()

    def slot(self) -> str:
        m = re.search(r"rauc\.slot=(\w)", self.guest.check("cat /proc/cmdline"))
        assert m, "no rauc.slot= on the kernel command line"
        return m.group(1)

    def grubenv(self) -> dict[str, str]:
        out = self.guest.check(f"grub-editenv {GRUBENV} list")
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    def version(self) -> str:
        return self.guest.check("cat /etc/endcap/version").strip()


@pytest.fixture(scope="module")
def cycle(dev_image, chromium, tmp_path_factory):
    """The provisioned guest on v1 (slot A): TPM enrolled, model installed through trust, a sale rung up,
    and its screen open in Chromium through the signage port forward. The page stays open across every
    reboot and reconnects by itself, as the store's screen does: signage is healthy only while a screen
    acknowledges, and signage is one of the services the health gate waits for."""
    work = tmp_path_factory.mktemp("cycle")
    bundles = [variants.bundle(dev_image, "2.0.0"), variants.bundle(dev_image, "3.0.0", "unhealthy"),
               variants.bundle(dev_image, "4.0.0", "unbootable")]
    g = Guest(work / "guest", dev_image.disk)
    signer = provision.make_signer()
    enrolment = provision.enrol_tpm(g.tpm_state, signer)
    g.media = (provision.model_media(work, signer), variants.media(bundles, work))
    c = Cycle(g, enrolment, {v: f"{BUNDLES}/{b.name}" for v, b in zip(("2.0.0", "3.0.0", "4.0.0"), bundles)})
    try:
        g.boot()
        c.login()
        provision.wait_running(g, BOOT_TIMEOUT_S)
        installed = provision.install_model(g).split()
        assert installed[-3] == "installed", installed
        c.model = installed[-2:]
        provision.store_activity(g)
        # synced: the power cut below comes within the kernel's 30 s writeback delay, and unsynced data of
        # a new file is lost in a power cut (ext4 delayed allocation), as on a real device
        g.check(f"echo v1-was-here > {MARKER} && sync {MARKER}")
        assert c.slot() == "A" and c.version() == "1.0.0"
        screen = chromium.new_context(service_workers="allow")
        provision.open_screen(screen, g)
        try:
            yield c
        finally:
            screen.close()
    finally:
        g.stop()


def test_power_cut_mid_install_boots_the_old_slot(cycle):
    g = cycle.guest
    st = install_bundle(g, cycle.bundles["2.0.0"])
    assert st["state"] in ("verifying", "installing"), st
    # RAUC marks the slot it writes bad just before the first byte (after the bundle check, which ends at
    # 40 %): once the grubenv says so, RAUC is writing slot B (~100 s under TCG). Cut the power then.
    g.check(f"timeout 900 sh -c 'until grub-editenv {GRUBENV} list | grep -qx B_OK=0; do sleep 0.2; done'",
            timeout_s=960)
    wait_status(g, 60, state="installing")
    g.stop()
    cycle.boot()
    assert cycle.slot() == "A" and cycle.version() == "1.0.0"
    env = cycle.grubenv()
    # the mark RAUC made before writing survived the cut (grub-editenv syncs): GRUB never tries the torn slot
    assert env["ORDER"].split()[0] == "A" and env["A_OK"] == "1" and env["B_OK"] == "0", env
    st = wait_status(g, 300, state="idle", version="1.0.0", booted="A")
    assert st["primary"] == "A", st


def test_v2_installs_into_b_and_is_committed_once_healthy(cycle):
    g = cycle.guest
    install_bundle(g, cycle.bundles["2.0.0"])
    # verify + install, then the updater reboots at once (no reboot window on the dev image)
    cycle.reboot_by_itself(timeout_s=1500)
    cycle.login()
    assert cycle.slot() == "B" and cycle.version() == "2.0.0"
    provision.store_activity(g)  # fresh POS traffic: offers is healthy while stock flows
    st = wait_status(g, HEALTH_S + 120, last_result="committed", version="2.0.0", booted="B")
    assert st["state"] == "idle" and st["primary"] == "B", st
    env = cycle.grubenv()
    assert env["B_OK"] == "1" and env["B_TRY"] == "0" and env["ORDER"].split()[0] == "B", env
    assert g.check(f"cat {MARKER}").strip() == "v1-was-here"


def test_v3_that_fails_health_is_rolled_back_by_itself(cycle):
    g = cycle.guest
    install_bundle(g, cycle.bundles["3.0.0"])
    cycle.reboot_by_itself(timeout_s=1500)  # installed into A, the updater reboots into it
    # v3 boots in A; its pos never gets healthy; after confirm_timeout_s the updater marks A bad and reboots
    cycle.reboot_by_itself(timeout_s=BOOT_TIMEOUT_S + variants.CONFIRM_TIMEOUT_S + 300)
    cycle.login()
    assert cycle.slot() == "B" and cycle.version() == "2.0.0"
    st = wait_status(g, 300, state="idle", booted="B", version="2.0.0", last_result="rolled-back",
                     history_has=["3.0.0", "rolled-back"])
    assert "pos" in (st["rollback_reason"] or ""), st
    assert cycle.grubenv()["A_OK"] == "0"


def test_v4_that_cannot_boot_falls_back_by_itself(cycle):
    g = cycle.guest
    install_bundle(g, cycle.bundles["4.0.0"])
    cycle.reboot_by_itself(timeout_s=1500)  # installed into A, the updater reboots into it
    # v4's init exits: the kernel panics, panic=10 reboots; GRUB sees A tried and not confirmed
    start = g.offset
    g.wait_for(re.compile(rb"Kernel panic - not syncing"), BOOT_TIMEOUT_S, start)
    cycle.reboot_by_itself(timeout_s=120)
    cycle.login()
    assert cycle.slot() == "B" and cycle.version() == "2.0.0"
    st = wait_status(g, 300, state="idle", booted="B", version="2.0.0", history_has=["4.0.0", "rolled-back"])
    assert "did not come up" in (st["rollback_reason"] or ""), st
    env = cycle.grubenv()  # the updater marked the slot that never came up bad: GRUB never tries it again
    assert env["A_OK"] == "0" and env["B_OK"] == "1" and env["B_TRY"] == "0", env


def test_rauc_itself_refuses_a_bundle_that_is_not_newer(cycle):
    before = cycle.grubenv()
    out = cycle.guest.sh(f"rauc install {cycle.bundles['2.0.0']}", timeout_s=900)
    assert out.rc != 0 and re.search(r"pre-install|handler", out.out, re.I), out.out
    assert cycle.grubenv() == before  # refused before any slot was touched


def test_data_and_tpm_state_survived_every_update(cycle):
    g = cycle.guest
    assert g.check(f"cat {MARKER}").strip() == "v1-was-here"
    assert provision.store_activity(g).split()[-2] == "sale"  # the POS database on /data still takes sales
    st = wait_status(g, 120, state="idle")
    outcomes = [(r["version"], r["outcome"]) for r in st["history"]]
    for want in (("2.0.0", "committed"), ("3.0.0", "rolled-back"), ("4.0.0", "rolled-back")):
        assert want in outcomes, outcomes
    # the model trust installed on v1 is still active on v2, and a quote made in the guest verifies on the host
    nonce = secrets.token_bytes(32)
    reply = provision.attest(g, nonce)
    assert reply.ak_public_pem == cycle.enrolment.ak_public_pem
    event = verify_quote(cycle.enrolment.ak_public_pem, reply.evidence, nonce, PCR)
    assert event is not None, "nothing measured into the PCR: the active model was not attested"
    assert [event.name, event.version] == cycle.model, (event, cycle.model)

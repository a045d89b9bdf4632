"""The Orin RAUC custom backend run as RAUC runs it: a real process per call, against a fake `nvbootctrl`
(an executable first on PATH, state in a JSON file) and a tmp directory standing in for efivarfs.

`Device.reboot()` plays the UEFI firmware: it boots the active slot unless its RootfsStatusSlot variable
says unbootable, and a slot that cannot boot at all uses up its retries, is marked unbootable by the
firmware and the other slot boots.
"""
from __future__ import annotations

import json
import shutil
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

JETSON = Path(__file__).resolve().parents[2] / "ota" / "rauc" / "jetson"
BACKEND = JETSON / "nvboot_backend.py"
GUID = "781e084c-a330-417c-b678-38e696380cb9"
NORMAL, UNBOOTABLE = 0x00, 0xFF

FAKE_NVBOOTCTRL = """\
#!{python}
import json, os, sys
state_path = os.environ["FAKE_NVBOOT_STATE"]
efivars = os.environ["FAKE_NVBOOT_EFIVARS"]
with open(state_path) as f:
    st = json.load(f)
args = sys.argv[1:]
target = "bootloader"
if args[:2] == ["-t", "rootfs"]:
    target, args = "rootfs", args[2:]
st["calls"].append([target] + args)
def save():
    with open(state_path, "w") as f:
        json.dump(st, f)
def status(slot):
    path = os.path.join(efivars, "RootfsStatusSlot%s-{guid}" % "AB"[slot])
    try:
        raw = open(path, "rb").read()
    except FileNotFoundError:
        return "unknown"
    if len(raw) != 8:
        return "unknown"
    return "unbootable" if raw[4] == 0xFF else "normal"
if st.get("fail") and st["fail"] in " ".join(args):
    save()
    print("nvbootctrl: Failed to access boot control", file=sys.stderr)
    sys.exit(4)
cmd = args[0] if args else ""
if cmd == "get-current-slot":
    print(st.get("current_output", st["current"]))
elif cmd == "dump-slots-info":
    if st.get("garbage"):
        print("hello")
    else:
        print("Current %s slot: %s" % (target, "AB"[st["current"]]))
        print("Active %s slot: %s" % (target, "AB"[st["active"]]))
        print("num_slots: 2")
        for s in (0, 1):
            print("slot: %d,             retry_count: %d,             status: %s" % (s, st["retry"][s], status(s)))
elif cmd == "set-active-boot-slot" and args[1:] in (["0"], ["1"]):
    st["active"] = int(args[1])
elif cmd == "verify":
    st["verified"] += 1
else:
    save()
    print("nvbootctrl: bad command %r" % args, file=sys.stderr)
    sys.exit(1)
save()
"""


class Device:
    def __init__(self, root: Path, target: str = "rootfs", verify: bool = True):
        self.root = root
        self.bin = root / "bin"
        self.efivars = root / "efivars"
        self.state_path = root / "nvboot.json"
        self.conf = root / "nvboot.conf"
        self.bin.mkdir(parents=True)
        self.efivars.mkdir()
        fake = self.bin / "nvbootctrl"
        fake.write_text(FAKE_NVBOOTCTRL.format(python=sys.executable, guid=GUID))
        fake.chmod(0o755)
        self.save({"current": 0, "active": 0, "retry": [3, 3], "calls": [], "verified": 0})
        self.conf.write_text(textwrap.dedent(f"""\
            [nvboot]
            efivars = {self.efivars}
            target = {target}
            verify_on_good = {'yes' if verify else 'no'}
            timeout_s = 20
        """))
        self.set_status(0, NORMAL)
        self.set_status(1, NORMAL)

    def load(self) -> dict:
        return json.loads(self.state_path.read_text())

    def save(self, st: dict) -> None:
        self.state_path.write_text(json.dumps(st))

    def var(self, slot: int) -> Path:
        return self.efivars / f"RootfsStatusSlot{'AB'[slot]}-{GUID}"

    def status(self, slot: int) -> int:
        raw = self.var(slot).read_bytes()
        assert len(raw) == 8 and raw[:4] == b"\x07\x00\x00\x00"
        return int.from_bytes(raw[4:], "little")

    def set_status(self, slot: int, value: int) -> None:
        self.var(slot).write_bytes(b"\x07\x00\x00\x00" + value.to_bytes(4, "little"))

    def env(self) -> dict:
        env = dict(os.environ)
        env["PATH"] = f"{self.bin}{os.pathsep}{env.get('PATH', '')}"
        env["ENDCAP_NVBOOT_CONF"] = str(self.conf)
        env["FAKE_NVBOOT_STATE"] = str(self.state_path)
        env["FAKE_NVBOOT_EFIVARS"] = str(self.efivars)
        return env

    def call(self, *args: str) -> subprocess.CompletedProcess:
        # Executed directly, as RAUC does: exercises the shebang and the executable bit too.
        return subprocess.run([str(BACKEND), *args], env=self.env(), capture_output=True, text=True, timeout=60)

    def ok(self, *args: str) -> str:
        proc = self.call(*args)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout.strip()

    def fails(self, *args: str) -> str:
        proc = self.call(*args)
        assert proc.returncode == 1, (proc.stdout, proc.stderr)
        assert proc.stdout == ""
        assert proc.stderr.startswith("endcap-nvboot-backend: ")
        return proc.stderr

    def reboot(self, bootable: tuple = (True, True)) -> None:
        """The firmware: try the active slot unless unbootable; a slot that cannot boot burns its
        retries, is written unbootable, and the other slot boots."""
        st = self.load()
        slot = st["active"]
        if self.status(slot) == UNBOOTABLE:
            slot = 1 - slot
        if not bootable[slot]:
            st["retry"][slot] = 0
            self.set_status(slot, UNBOOTABLE)
            slot = 1 - slot
        st["current"] = st["active"] = slot
        self.save(st)


@pytest.fixture
def device(tmp_path):
    return Device(tmp_path)


def test_fresh_device_reports_a(device):
    assert device.ok("get-current") == "A"
    assert device.ok("get-primary") == "A"
    assert device.ok("get-state", "A") == "good"
    assert device.ok("get-state", "B") == "good"
    assert ["rootfs", "get-current-slot"] in device.load()["calls"]


def test_install_reboot_mark_good(device):
    # What RAUC does for an install into B, then the updater's mark-good after the health gate.
    assert device.ok("set-state", "B", "bad") == ""
    assert device.status(1) == UNBOOTABLE
    assert device.load()["active"] == 0
    device.ok("set-primary", "B")
    assert device.status(1) == NORMAL, "set-primary must re-enable the slot"
    assert device.load()["active"] == 1
    assert device.ok("get-primary") == "B"
    device.reboot()
    assert device.ok("get-current") == "B"
    device.ok("set-state", "B", "good")
    assert device.load()["verified"] == 1
    assert device.ok("get-state", "B") == "good"
    device.reboot()
    assert device.ok("get-current") == "B"


def test_failed_health_marks_bad_and_falls_back(device):
    device.ok("set-state", "B", "bad")
    device.ok("set-primary", "B")
    device.reboot()
    assert device.ok("get-current") == "B"
    proc = device.call("set-state", "B", "bad")
    assert proc.returncode == 0, proc.stderr
    assert "set-active-boot-slot 0" in proc.stderr
    assert device.status(1) == UNBOOTABLE
    assert device.ok("get-primary") == "A"
    assert device.load()["verified"] == 0
    device.reboot()
    assert device.ok("get-current") == "A"
    assert device.ok("get-state", "B") == "bad"
    assert device.ok("get-state", "A") == "good"


def test_unbootable_image_firmware_falls_back_and_next_install_works(device):
    device.ok("set-state", "B", "bad")
    device.ok("set-primary", "B")
    device.reboot(bootable=(True, False))
    assert device.ok("get-current") == "A"
    assert device.ok("get-primary") == "A"
    assert device.ok("get-state", "B") == "bad"
    # the next install re-enables B and boots it
    device.ok("set-state", "B", "bad")
    device.ok("set-primary", "B")
    assert device.status(1) == NORMAL
    device.reboot()
    assert device.ok("get-current") == "B"


def test_interrupted_install_leaves_the_old_slot_primary(device):
    # RAUC stopped after marking the target bad and before set-primary (killed mid-write).
    device.ok("set-state", "B", "bad")
    device.reboot()
    assert device.ok("get-current") == "A"
    assert device.ok("get-primary") == "A"


def test_bootloader_target_omits_t_rootfs(tmp_path):
    device = Device(tmp_path, target="bootloader")
    device.ok("set-primary", "B")
    calls = device.load()["calls"]
    assert ["bootloader", "set-active-boot-slot", "1"] in calls
    assert all(c[0] == "bootloader" for c in calls)


def test_verify_can_be_turned_off(tmp_path):
    device = Device(tmp_path, verify=False)
    device.ok("set-state", "A", "good")
    assert device.load()["verified"] == 0


def test_immutable_efivar_is_still_written(device):
    made_immutable = subprocess.run(["chattr", "+i", str(device.var(1))], capture_output=True).returncode == 0
    device.ok("set-state", "B", "bad")
    assert device.status(1) == UNBOOTABLE
    if made_immutable:
        lsattr = subprocess.run(["lsattr", str(device.var(1))], capture_output=True, text=True, check=True)
        assert "i" not in lsattr.stdout.split()[0]


def test_missing_variable_names_the_file_and_the_fix(device):
    device.var(1).unlink()
    err = device.fails("get-state", "B")
    assert "RootfsStatusSlotB" in err and "USE_REDUNDANT_FLASH_LAYOUT_DEFAULT" in err


def test_corrupt_variable_is_refused(device):
    device.var(0).write_bytes(b"\x07\x00")
    err = device.fails("get-primary")
    assert "RootfsStatusSlotA: expected 8 bytes" in err


def test_unknown_status_value_is_refused(device):
    device.set_status(1, 0x2)
    assert "unknown status value 0x2" in device.fails("get-state", "B")


def test_nvbootctrl_failure_is_reported_and_nothing_written(device):
    st = device.load()
    st["fail"] = "set-active-boot-slot"
    device.save(st)
    err = device.fails("set-primary", "B")
    assert "set-active-boot-slot 1: exit 4: nvbootctrl: Failed to access boot control" in err
    assert device.load()["active"] == 0


def test_nvbootctrl_garbage_is_refused(device):
    st = device.load()
    st["garbage"] = True
    device.save(st)
    assert "no 'Current ... slot:' line" in device.fails("get-primary")
    st["current_output"] = "banana"
    device.save(st)
    assert "get-current-slot: expected a slot 0/1 or A/B, got 'banana'" in device.fails("get-current")


def test_nvbootctrl_missing(device):
    device.conf.write_text(f"[nvboot]\nefivars = {device.efivars}\nnvbootctrl = {device.root}/nope\n")
    assert "nope: not found" in device.fails("get-current")


@pytest.mark.parametrize("conf,needle", [
    ("[nvboot]\nbogus = 1\n", "unknown key(s) bogus"),
    ("[nvboot]\ntarget = uefi\n", "target 'uefi'"),
    ("[nvboot]\nverify_on_good = maybe\n", "nvboot.verify_on_good"),
    ("[nvboot]\ntimeout_s = 0\n", "nvboot.timeout_s: must be > 0"),
    ("[other]\n", "unknown section(s) other"),
    ("not ini at all\n", "not a valid INI file"),
])
def test_bad_settings_are_named(device, conf, needle):
    device.conf.write_text(conf)
    err = device.fails("get-current")
    assert needle in err and str(device.conf) in err


@pytest.mark.parametrize("args,needle", [
    ((), "no command given"),
    (("set-state", "C", "good"), "bootname 'C'"),
    (("set-state", "A", "fine"), "'fine' must be 'good' or 'bad'"),
])
def test_bad_rauc_calls_are_refused_before_touching_anything(device, args, needle):
    before = device.load()["calls"]
    assert needle in device.fails(*args)
    assert device.load()["calls"] == before


# --- the same backend driven by a real `rauc service` (Debian RAUC 1.8) ------------------------------

class RaucOnFakeOrin:
    """rauc service on a private dbus-daemon, bootloader=custom → this backend → the fake nvbootctrl."""

    def __init__(self, device: Device, pki):
        from tests.fixtures.rauc import make_rootfs_image
        from endcap.sim.dbus import start_dbus

        self.device = device
        root = device.root
        for d in ("data", "mnt"):
            (root / d).mkdir()
        self.slots = {"A": make_rootfs_image(root / "slot-a.img", "factory A"),
                      "B": make_rootfs_image(root / "slot-b.img", "factory B")}
        self.conf = root / "system.conf"
        self.conf.write_text(
            f"[system]\ncompatible={COMPAT}\nbootloader=custom\ndata-directory={root / 'data'}\n"
            f"mountprefix={root / 'mnt'}\n\n[keyring]\npath={pki.keyring}\n\n"
            f"[handlers]\nbootloader-custom-backend={BACKEND}\n\n"
            f"[slot.rootfs.0]\ndevice={self.slots['A']}\ntype=ext4\nbootname=A\n\n"
            f"[slot.rootfs.1]\ndevice={self.slots['B']}\ntype=ext4\nbootname=B\n")
        self.bus = start_dbus()
        self.proc = None
        self.log = root / "rauc.log"

    def env(self) -> dict:
        return {**self.device.env(), **self.bus.env}

    def start(self) -> None:
        booted = "AB"[self.device.load()["current"]]
        self.proc = subprocess.Popen(["rauc", "service", f"--conf={self.conf}", f"--override-boot-slot={booted}"],
                                     env=self.env(), stdout=open(self.log, "ab"), stderr=subprocess.STDOUT)
        while True:  # ready when de.pengutronix.rauc is owned; an early exit fails with rauc's log
            assert self.proc.poll() is None, self.log.read_text()
            r = subprocess.run(["dbus-send", "--system", "--print-reply", "--dest=org.freedesktop.DBus",
                                "/org/freedesktop/DBus", "org.freedesktop.DBus.NameHasOwner", "string:de.pengutronix.rauc"],
                               env=self.env(), capture_output=True, text=True, timeout=10)
            if "boolean true" in r.stdout:
                return
            try:
                self.proc.wait(timeout=0.05)
            except subprocess.TimeoutExpired:
                pass

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, 15)
            self.proc.wait(timeout=20)
        self.proc = None

    def rauc(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["rauc", *args], env=self.env(), capture_output=True, text=True, timeout=120)

    def status(self) -> dict:
        r = self.rauc("status", "--detailed", "--output-format=json")
        assert r.returncode == 0, r.stderr + self.log.read_text()
        return json.loads(r.stdout)


COMPAT = "endcap-test-orin"


@pytest.fixture
def rauc_orin(tmp_path):
    from tests.fixtures.rauc import make_pki

    device = Device(tmp_path / "dev")
    pki = make_pki(tmp_path / "pki")
    orin = RaucOnFakeOrin(device, pki)
    orin.pki = pki
    yield orin
    orin.stop()
    orin.bus.stop()
    shutil.rmtree(orin.bus.directory, ignore_errors=True)


def test_real_rauc_installs_switches_and_rolls_back_through_the_backend(rauc_orin, tmp_path):
    from tests.fixtures.rauc import make_bundle_file

    device = rauc_orin.device
    rauc_orin.start()
    st = rauc_orin.status()
    assert st["booted"] == "A"
    assert st["boot_primary"] == "rootfs.0"

    bundle = make_bundle_file(tmp_path / "v2.raucb", version="2.0.0", pki=rauc_orin.pki, compatible=COMPAT)
    r = rauc_orin.rauc("install", str(bundle))
    assert r.returncode == 0, r.stdout + r.stderr + rauc_orin.log.read_text()
    calls = [c for c in device.load()["calls"] if c[1] == "set-active-boot-slot"]
    assert calls == [["rootfs", "set-active-boot-slot", "1"]]
    assert device.status(1) == NORMAL  # RAUC marked B bad before writing, set-primary re-enabled it
    assert rauc_orin.status()["boot_primary"] == "rootfs.1"
    written = subprocess.run(["debugfs", "-R", "cat /etc/endcap-release", str(rauc_orin.slots["B"])],
                             capture_output=True, text=True, check=True).stdout.strip()
    assert written == "endcap 2.0.0"

    # reboot into B; the updater's health gate passes → mark good
    rauc_orin.stop()
    device.reboot()
    rauc_orin.start()
    assert rauc_orin.status()["booted"] == "B"
    r = rauc_orin.rauc("status", "mark-good", "booted")
    assert r.returncode == 0, r.stderr
    assert device.load()["verified"] == 1

    # a later health failure on B → mark bad → the next boot is A again
    r = rauc_orin.rauc("status", "mark-bad", "booted")
    assert r.returncode == 0, r.stderr
    assert device.status(1) == UNBOOTABLE
    assert device.load()["active"] == 0
    assert rauc_orin.status()["boot_primary"] == "rootfs.0"
    rauc_orin.stop()
    device.reboot()
    assert device.load()["current"] == 0


def test_real_rauc_reports_a_backend_failure(rauc_orin):
    rauc_orin.start()
    st = rauc_orin.device.load()
    st["fail"] = "set-active-boot-slot"
    rauc_orin.device.save(st)
    r = rauc_orin.rauc("status", "mark-active", "other")
    assert r.returncode != 0
    assert rauc_orin.device.load()["active"] == 0

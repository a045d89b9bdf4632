"""The overlay's systemd units, users, tmpfiles and config, checked with the real systemd tools.

Pure checks: every service of the gateway (and the updater and maint services) has a unit with the
directives the image relies on. Tool checks: ``systemd-analyze verify`` on the units in a root made
of this host's units plus the overlay; ``systemd-sysusers`` + ``systemd-tmpfiles --create`` on a
scratch root give each service its user and its state directory with the right owner and mode.
"""
from __future__ import annotations

import pwd
import grp
import shutil
import subprocess
from pathlib import Path

import pytest

from endcap.cli import main as endcap_main
from endcap.gateway import SERVICES

REPO = Path(__file__).resolve().parents[2]
OVERLAY = REPO / "overlay"
UNITS = OVERLAY / "usr/lib/systemd/system"
ALL_SERVICES = sorted(set(SERVICES) | {"updater", "maint"})


def parse_unit(path: Path) -> dict[str, dict[str, list[str]]]:
    """Sections -> key -> every value (systemd allows repeated keys)."""
    out: dict[str, dict[str, list[str]]] = {}
    section = None
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            section = out.setdefault(line[1:-1], {})
            continue
        assert section is not None, f"{path}: {raw!r} outside a section"
        key, sep, value = line.partition("=")
        assert sep, f"{path}: {raw!r} is not key=value"
        section.setdefault(key.strip(), []).append(value.strip())
    return out


def one(unit: dict, section: str, key: str) -> str:
    values = unit.get(section, {}).get(key)
    assert values, f"[{section}] {key}= missing"
    return values[-1]


@pytest.mark.parametrize("svc", ALL_SERVICES)
def test_every_service_has_a_unit_with_the_required_directives(svc):
    path = UNITS / f"endcap-{svc}.service"
    assert path.is_file(), f"{path}: missing (gateway service {svc!r} has no unit)"
    u = parse_unit(path)
    assert one(u, "Service", "Type") == "notify"
    assert one(u, "Service", "NotifyAccess") == "main"
    assert one(u, "Service", "ExecStart") == f"/usr/bin/endcap service {svc} --root /"
    assert int(one(u, "Service", "WatchdogSec")) >= 10
    assert one(u, "Service", "Restart") == "on-failure"
    assert "78" in one(u, "Service", "RestartPreventExitStatus").split()
    assert one(u, "Service", "User") == f"endcap-{svc}"
    assert one(u, "Service", "Group") == "endcap"
    for key in ("NoNewPrivileges", "ProtectHome", "PrivateTmp"):
        assert one(u, "Service", key) == "yes", key
    assert one(u, "Service", "ProtectSystem") == "strict"
    rw = one(u, "Service", "ReadWritePaths").split()
    # maint also writes the network page's .network file, which networkd reads (tests/unit/image)
    extra = ["/var/lib/endcap/network"] if svc == "maint" else []
    assert sorted(rw) == sorted(["/run/endcap", f"/var/lib/endcap/{svc}", *extra])
    assert one(u, "Service", "CapabilityBoundingSet") == ""
    assert "var-lib-endcap.mount" in one(u, "Unit", "Requires").split()
    assert one(u, "Install", "WantedBy") == "multi-user.target"


@pytest.mark.parametrize("svc", ["trust", "updater"])
def test_tpm_users_get_the_tpm_and_nothing_else(svc):
    u = parse_unit(UNITS / f"endcap-{svc}.service")
    assert "tss" in one(u, "Service", "SupplementaryGroups").split()
    assert one(u, "Service", "DeviceAllow") == "/dev/tpmrm0 rw"
    assert one(u, "Service", "DevicePolicy") == "closed"


def test_services_without_devices_get_private_dev():
    for svc in ("pos", "offers", "signage", "maint"):
        u = parse_unit(UNITS / f"endcap-{svc}.service")
        assert one(u, "Service", "PrivateDevices") == "yes", svc
        assert "DeviceAllow" not in u["Service"], svc


def test_maint_reads_the_journal():
    u = parse_unit(UNITS / "endcap-maint.service")
    assert "systemd-journal" in one(u, "Service", "SupplementaryGroups").split()


def _scratch_root(tmp_path: Path) -> Path:
    """This host's unit files plus the overlay, with the overlay's ExecStart binaries present as files."""
    root = tmp_path / "root"
    (root / "usr/lib/systemd").mkdir(parents=True)
    shutil.copytree("/lib/systemd/system", root / "usr/lib/systemd/system", symlinks=True)
    shutil.copytree(OVERLAY, root, dirs_exist_ok=True, symlinks=True)
    # verify checks that each ExecStart= binary exists and is executable in the root; these come from
    # the image (the venv's console script, Debian's weston/agetty), not the overlay.
    for exe in ("usr/bin/endcap", "usr/bin/weston"):
        p = root / exe
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text("#!/bin/sh\nexit 0\n")
        p.chmod(0o755)
    return root


def test_systemd_analyze_verify_accepts_every_overlay_unit(tmp_path):
    root = _scratch_root(tmp_path)
    # unit files only: drop-in folders (systemd-networkd.service.d) are verified with their unit
    units = sorted(p.name for p in UNITS.iterdir() if p.is_file() and not p.name.endswith("@.service"))
    units.append("endcap-kiosk@endcap-dev.service")
    paths = [str(root / "usr/lib/systemd/system" / u) if "@" not in u else u for u in units]
    r = subprocess.run(["systemd-analyze", "verify", "--man=no", f"--root={root}", *paths],
                       capture_output=True, text=True, cwd=root / "usr/lib/systemd/system")
    assert r.returncode == 0, r.stderr
    assert r.stderr.strip() == "", r.stderr


def test_verify_catches_a_broken_unit(tmp_path):
    root = _scratch_root(tmp_path)
    bad = root / "usr/lib/systemd/system/endcap-pos.service"
    bad.write_text(bad.read_text().replace("ExecStart=/usr/bin/endcap", "ExecStart=/usr/bin/no-such-endcap"))
    r = subprocess.run(["systemd-analyze", "verify", "--man=no", f"--root={root}", str(bad)], capture_output=True, text=True)
    assert r.returncode != 0 and "no-such-endcap" in r.stderr


def _passwd(root: Path) -> dict[str, tuple[int, int]]:
    out = {}
    for line in (root / "etc/passwd").read_text().splitlines():
        f = line.split(":")
        out[f[0]] = (int(f[2]), int(f[3]))
    return out


def _groups(root: Path) -> dict[str, tuple[int, list[str]]]:
    out = {}
    for line in (root / "etc/group").read_text().splitlines():
        f = line.split(":")
        out[f[0]] = (int(f[2]), [m for m in f[3].split(",") if m])
    return out


def test_sysusers_and_tmpfiles_give_each_service_its_user_and_state_dir(tmp_path):
    root = tmp_path / "root"
    shutil.copytree(OVERLAY, root, symlinks=True)
    (root / "etc").mkdir(exist_ok=True)
    # the groups the image gets from Debian packages (tss: tpm-udev, systemd-journal: systemd)
    (root / "etc/group").write_text("root:x:0:\nvideo:x:44:\nrender:x:105:\ninput:x:104:\ntss:x:106:\n"
                                    "systemd-journal:x:999:\n")
    (root / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    r = subprocess.run(["systemd-sysusers", f"--root={root}"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    users, groups = _passwd(root), _groups(root)
    endcap_gid = groups["endcap"][0]
    for svc in ALL_SERVICES:
        assert users[f"endcap-{svc}"][1] == endcap_gid, svc
        assert users[f"endcap-{svc}"][0] < 1000, f"endcap-{svc} is not a system user"
    assert "endcap-trust" in groups["tss"][1] and "endcap-updater" in groups["tss"][1]
    assert "endcap-maint" in groups["systemd-journal"][1]
    assert "endcap-pos" not in groups["tss"][1]
    (root / "data/endcap").mkdir(parents=True)
    (root / "var/lib").mkdir(parents=True)
    (root / "var/lib/endcap").symlink_to("../../data/endcap")  # stands in for the bind mount
    (root / "run").mkdir()
    r = subprocess.run(["systemd-tmpfiles", f"--root={root}", "--create", str(root / "usr/lib/tmpfiles.d/endcap.conf")],
                       capture_output=True, text=True, cwd=root)
    assert r.returncode == 0, r.stderr
    for svc in ALL_SERVICES:
        st = (root / "data/endcap" / svc).stat()
        assert (st.st_uid, st.st_gid) == (users[f"endcap-{svc}"][0], endcap_gid), svc
        assert st.st_mode & 0o7777 == 0o750, svc
    st = (root / "run/endcap").stat()
    assert st.st_gid == endcap_gid and st.st_mode & 0o7777 == 0o2770


@pytest.mark.parametrize("path", [OVERLAY / "etc/endcap/endcap.toml",
                                  REPO / "image/debian/overlay-dev/etc/endcap/endcap.toml"])
def test_shipped_configs_pass_check_config(path, capsys):
    assert endcap_main(["check-config", str(path)]) == 0
    assert capsys.readouterr().out.strip().endswith(": ok")


def test_shipped_configs_have_every_service_section():
    import tomllib

    for path in (OVERLAY / "etc/endcap/endcap.toml", REPO / "image/debian/overlay-dev/etc/endcap/endcap.toml"):
        table = tomllib.loads(path.read_text())
        missing = [s for s in SERVICES if s not in table]
        assert not missing, f"{path}: no section for {missing}"


def test_users_named_in_units_exist_in_sysusers():
    text = "\n".join(p.read_text() for p in (OVERLAY / "usr/lib/sysusers.d").glob("*.conf"))
    declared = {line.split()[1] for line in text.splitlines() if line.startswith("u ")}
    for unit in UNITS.glob("*.service"):
        for user in parse_unit(unit).get("Service", {}).get("User", []):
            assert user in declared, f"{unit.name}: User={user} not declared in sysusers.d"


def test_host_has_the_users_the_dbus_test_borrows():
    # the D-Bus policy test runs clients as these host users (see test_overlay_dbus.py)
    assert pwd.getpwnam("nobody") and pwd.getpwnam("daemon") and grp.getgrnam("nogroup")

"""The kiosk's systemd units and launcher in overlay/: valid for systemd, restarted when they die, pointed
at the loopback page of their display, and never taken down with the signage service."""
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

OVERLAY = Path(__file__).resolve().parents[2] / "overlay"
UNITS = OVERLAY / "usr/lib/systemd/system"
LAUNCHER = OVERLAY / "usr/libexec/endcap/endcap-kiosk"


def unit(name: str) -> dict[str, list[str]]:
    """``key -> values`` of a unit file (repeatable keys keep every value)."""
    out: dict[str, list[str]] = {}
    for line in (UNITS / name).read_text().splitlines():
        if "=" in line and not line.lstrip().startswith(("#", ";", "[")):
            key, _, value = line.partition("=")
            out.setdefault(key.strip(), []).append(value.strip())
    return out


def test_systemd_accepts_the_units(tmp_path):
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze (Debian package systemd) is needed to check the units"
    for f in (p for p in UNITS.glob("*") if p.is_file()):  # the endcap units and mounts (not drop-in folders)
        shutil.copy(f, tmp_path / f.name)
    shutil.copy(UNITS / "endcap-kiosk@.service", tmp_path / "endcap-kiosk@aisle-7.service")
    names = ["endcap-kiosk-weston.service", "endcap-kiosk@aisle-7.service", "endcap-signage.service"]
    res = subprocess.run([analyze, "verify", "--man=no", *names], cwd=tmp_path, capture_output=True, text=True,
                         env=dict(os.environ, SYSTEMD_LOG_LEVEL="notice"), timeout=60)
    # The binaries live in the image, not on this host; anything else (unknown keys, bad values) is a defect.
    problems = [ln for ln in (res.stdout + res.stderr).splitlines() if ln.strip() and "is not executable" not in ln]
    assert problems == [], problems


def test_kiosk_restarts_forever_and_survives_a_dead_signage_service():
    kiosk = unit("endcap-kiosk@.service")
    assert kiosk["Restart"] == ["always"] and kiosk["StartLimitIntervalSec"] == ["0"]
    assert kiosk["ExecStart"] == ["/usr/libexec/endcap/endcap-kiosk %i"]
    deps = " ".join(kiosk.get("Requires", []) + kiosk.get("BindsTo", []) + kiosk.get("PartOf", []))
    assert "endcap-signage" not in deps  # the cached loop must keep playing while signage is down
    assert "endcap-kiosk-weston.service" in kiosk["BindsTo"] and kiosk["User"] == ["endcap-kiosk"]
    weston = unit("endcap-kiosk-weston.service")
    assert weston["Restart"] == ["always"] and "--socket=wayland-endcap" in weston["ExecStart"][0]
    ini = (OVERLAY / "etc/endcap/kiosk/weston.ini").read_text()
    assert re.search(r"^shell=kiosk-shell\.so$", ini, re.M) and re.search(r"^idle-time=0$", ini, re.M)


def run_launcher(tmp_path, *args, **env):
    env_file = tmp_path / "kiosk.env"
    env_file.write_text("\n".join(f"{k}={v}" for k, v in env.items()) + "\n")
    return subprocess.run(["sh", str(LAUNCHER), "--print", *args], capture_output=True, text=True, timeout=30,
                          env=dict(os.environ, ENDCAP_KIOSK_ENV=str(env_file)))


@pytest.mark.parametrize("browser", ["chromium", "cog"])
def test_launcher_opens_the_loopback_page_of_its_display(tmp_path, browser):
    res = run_launcher(tmp_path, "aisle-7", KIOSK_BROWSER=browser, SIGNAGE_URL="http://127.0.0.1:8470/",
                       KIOSK_PROFILE_ROOT="/data/kiosk")
    assert res.returncode == 0, res.stderr
    argv = res.stdout.splitlines()
    assert argv[0] == browser and argv[-1] == "http://127.0.0.1:8470/display/aisle-7"
    if browser == "chromium":
        assert "--kiosk" in argv and "--user-data-dir=/data/kiosk/aisle-7" in argv
        assert "--disable-background-networking" in argv and "--disable-component-update" in argv


@pytest.mark.parametrize("args, env, reason", [
    (["Aisle 7"], {}, "is not [a-z0-9]"),
    (["../etc"], {}, "is not [a-z0-9]"),
    ([], {}, "is not [a-z0-9]"),
    (["aisle-7"], {"SIGNAGE_URL": "http://10.0.0.5:8470"}, "is not loopback"),
    (["aisle-7"], {"KIOSK_BROWSER": "firefox"}, "neither chromium nor cog"),
])
def test_launcher_refuses_bad_settings(tmp_path, args, env, reason):
    res = run_launcher(tmp_path, *args, **env)
    assert res.returncode == 2 and reason in res.stderr and res.stdout == ""

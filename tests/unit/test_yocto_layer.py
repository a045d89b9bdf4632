"""Offline checks of the Yocto production track (image/yocto): kas files through kas's own loader and
schema, every recipe/bbappend/conf through oelint-adv (scarthgap rules), and the contracts the layer
shares with the rest of the repository (RAUC system.conf, overlay units, the service split).

Nothing here builds an image: that needs a real build host (docs/yocto.md).
"""
from __future__ import annotations

import configparser
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from kas.includehandler import ConfigFile, LoadConfigException

ROOT = Path(__file__).resolve().parents[2]
YOCTO = ROOT / "image" / "yocto"
LAYER = YOCTO / "meta-endcap"
KAS = YOCTO / "kas"
OELINT = Path(sys.executable).with_name("oelint-adv")
MACHINES = ("jetson-orin-nano-devkit-nvme", "jetson-agx-orin-devkit")
UPSTREAM = {"poky", "meta-openembedded", "meta-tegra", "meta-rauc", "meta-security"}
# Rules suppressed for every file, each with its reason. Per-line suppressions sit in the files, each
# next to a comment giving its reason (test_every_inline_suppression_is_explained).
SUPPRESSED = {
    "oelint.vars.homepageping": "pings HOMEPAGE over the network; these checks run offline (DESIGN §5)",
}


def lint_targets() -> list:
    files = [p for p in LAYER.rglob("*") if p.suffix in (".bb", ".bbappend", ".inc", ".conf")]
    return sorted(files)


def oelint(files, cwd=ROOT) -> subprocess.CompletedProcess:
    cmd = [str(OELINT), "--release", "scarthgap", "--quiet", "--constantmods=+image/yocto/oelint-constants.json"]
    for rule in SUPPRESSED:
        cmd += ["--suppress", rule]
    return subprocess.run(cmd + [str(f) for f in files], cwd=cwd, capture_output=True, text=True, timeout=300)


# --- kas ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("path", sorted(KAS.glob("*.yml")), ids=lambda p: p.name)
def test_kas_file_passes_kas_schema(path):
    cf = ConfigFile.load(str(path))
    assert cf.config["header"]["version"] == 14


def test_kas_schema_check_is_real(tmp_path):
    bad = tmp_path / "bad.yml"
    bad.write_text("header:\n  version: 14\nmachines: jetson-agx-orin-devkit\n")
    with pytest.raises(LoadConfigException, match="validating"):
        ConfigFile.load(str(bad))


def _merged(path: Path) -> dict:
    """kas's include order (depth first, later wins), resolved the way kas does: relative to the repo root."""
    config = ConfigFile.load(str(path)).config
    merged: dict = {}
    for inc in config["header"].get("includes", []):
        assert isinstance(inc, str), "includes of this repository are plain paths"
        included = ROOT / inc
        assert included.is_file(), f"{path.name}: include {inc} does not exist"
        merged.update(_merged(included))
    for key, value in config.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    return merged


@pytest.mark.parametrize("machine", MACHINES)
def test_machine_build_pins_every_layer_on_scarthgap(machine):
    cfg = _merged(KAS / f"{machine}.yml")
    assert cfg["machine"] == machine
    assert cfg["distro"] == "endcap"
    assert "endcap-image" in cfg["target"]
    repos = cfg["repos"]
    assert UPSTREAM <= set(repos)
    for name in UPSTREAM:
        repo = repos[name]
        assert repo["url"].startswith("https://"), name
        assert repo["branch"] == "scarthgap", name
        # Exact commits come from `kas lock` (base.lock.yml), never from a hand-written placeholder.
        assert "commit" not in repo, name
    assert set(repos["meta-openembedded"]["layers"]) >= {"meta-oe", "meta-python"}
    assert "meta-tpm" in repos["meta-security"]["layers"]
    # The repository itself provides meta-endcap.
    assert list(repos["endcap"]["layers"]) == ["image/yocto/meta-endcap"]
    assert (ROOT / "image/yocto/meta-endcap/conf/layer.conf").is_file()
    # Keys are forwarded from the builder's environment only, never given a value here.
    assert all(cfg["env"][k] is None for k in ("ENDCAP_RAUC_KEYRING_DIR", "ENDCAP_RAUC_KEY_FILE", "ENDCAP_RAUC_CERT_FILE"))


def test_lock_files_if_present_pin_full_commits():
    for lock in KAS.glob("*.lock.yml"):
        cfg = ConfigFile.load(str(lock)).config
        for name, repo in cfg.get("overrides", {}).get("repos", {}).items():
            assert re.fullmatch(r"[0-9a-f]{40}", repo["commit"]), f"{lock.name}: {name}"


# --- oelint-adv --------------------------------------------------------------------------------------

def test_layer_is_oelint_clean():
    files = lint_targets()
    assert len(files) >= 15
    proc = oelint(files)
    assert proc.returncode == 0 and proc.stdout.strip() == "" and proc.stderr.strip() == "", proc.stdout + proc.stderr


def test_oelint_run_would_catch_a_broken_recipe(tmp_path):
    broken = tmp_path / "python3-tuf_7.0.1.bb"
    text = (LAYER / "recipes-devtools/python/python3-tuf_7.0.1.bb").read_text()
    broken.write_text(re.sub(r'^LICENSE = .*\n', "", text, flags=re.M).replace("SECTION =", "SECTON ="))
    proc = oelint([broken])
    assert proc.returncode != 0
    assert "oelint.var.mandatoryvar.LICENSE" in proc.stderr
    assert "'SECTON' is unknown, maybe you meant 'SECTION'" in proc.stderr


def test_every_inline_suppression_is_explained():
    for path in lint_targets():
        lines = path.read_text().splitlines()
        for i, line in enumerate(lines):
            if "nooelint:" not in line:
                continue
            around = [lines[j] for j in (i - 1, i + 1) if 0 <= j < len(lines)]
            assert any(a.startswith("#") and "nooelint" not in a for a in around), f"{path.name}:{i + 1}"


# --- gating by DISTRO_FEATURE, as meta-rauc does -------------------------------------------------------

def test_bbappends_only_require_when_the_endcap_feature_is_on():
    appends = list(LAYER.rglob("*.bbappend"))
    assert {p.name for p in appends} >= {"rauc-conf.bbappend", "rauc_%.bbappend", "linux-jammy-nvidia-tegra_%.bbappend"}
    for path in appends:
        code = [line for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")]
        assert len(code) == 1, path.name
        m = re.fullmatch(r"require \$\{@bb\.utils\.contains\('DISTRO_FEATURES', 'endcap', '([\w.-]+\.inc)', '', d\)\}", code[0])
        assert m, f"{path.name}: {code[0]}"
        assert (path.parent / m.group(1)).is_file()


def test_new_recipes_require_the_endcap_feature():
    for path in LAYER.glob("recipes-*/*/*.bb"):
        if path.parent.name == "python":
            continue  # generic Python libraries: built only when something above depends on them
        text = path.read_text()
        assert re.search(r'^REQUIRED_DISTRO_FEATURES = "[^"]*\bendcap\b', text, re.M), path.name
        assert "features_check" in text, path.name


def test_distro_turns_on_the_feature_and_the_redundant_layout():
    conf = (LAYER / "conf/distro/endcap.conf").read_text()
    assert re.search(r'^DISTRO_FEATURES:append = ".*\bendcap\b.*\brauc\b', conf, re.M)
    assert re.search(r'^USE_REDUNDANT_FLASH_LAYOUT_DEFAULT = "1"$', conf, re.M)
    assert 'LAYERSERIES_COMPAT_endcap = "scarthgap"' in (LAYER / "conf/layer.conf").read_text()


# --- RAUC --------------------------------------------------------------------------------------------

def test_image_never_ships_rauc_mark_good():
    image = (LAYER / "recipes-core/images/endcap-image.bb").read_text()
    assert re.search(r'^BAD_RECOMMENDATIONS \+= "rauc-mark-good"$', image, re.M)
    assert re.search(r'^PACKAGE_EXCLUDE \+= "rauc-mark-good"$', image, re.M)
    assert re.search(r'^IMAGE_FEATURES \+= "read-only-rootfs"$', image, re.M)
    rauc = (LAYER / "recipes-core/rauc/rauc-endcap.inc").read_text()
    assert 'SYSTEMD_AUTO_ENABLE:${PN}-mark-good:endcap = "disable"' in rauc
    assert 'RRECOMMENDS:${PN}:remove:endcap = "${PN}-mark-good"' in rauc


def _conf(path: Path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None)
    parser.read_string(path.read_text())
    return parser


def test_jetson_system_conf_keeps_the_rauc_contract():
    jetson = _conf(ROOT / "ota/rauc/jetson/system.conf")
    dev = _conf(ROOT / "ota/rauc/dev/system.conf")
    assert jetson["system"]["bootloader"] == "custom"
    assert jetson["system"]["compatible"] == "@RAUC_COMPATIBLE@"
    for key in ("data-directory", "bundle-formats"):
        assert jetson["system"][key] == dev["system"][key]
    assert jetson["keyring"]["path"] == dev["keyring"]["path"] == "/etc/rauc/keyring.pem"
    assert jetson["handlers"]["pre-install"] == dev["handlers"]["pre-install"]
    slots = {s: dict(jetson[s]) for s in jetson.sections() if s.startswith("slot.")}
    assert slots == {
        "slot.rootfs.0": {"device": "/dev/disk/by-partlabel/APP", "type": "ext4", "bootname": "A"},
        "slot.rootfs.1": {"device": "/dev/disk/by-partlabel/APP_b", "type": "ext4", "bootname": "B"},
    }
    assert {s for s in dev.sections() if s.startswith("slot.")} == set(slots)
    # The backend path in system.conf is where endcap-nvboot-backend installs it.
    backend = jetson["handlers"]["bootloader-custom-backend"]
    recipe = (LAYER / "recipes-endcap/endcap-nvboot-backend/endcap-nvboot-backend_0.1.0.bb").read_text()
    assert backend == "/usr/lib/endcap/rauc/endcap-nvboot-backend"
    assert "ln -sf nvboot_backend.py ${D}${nonarch_libdir}/endcap/rauc/endcap-nvboot-backend" in recipe
    assert "sed -i -e 's|@RAUC_COMPATIBLE@|${ENDCAP_RAUC_COMPATIBLE}|'" in (LAYER / "recipes-core/rauc/rauc-conf-endcap.inc").read_text()


def test_bundle_is_verity_signed_by_builder_keys_for_the_same_compatible():
    bundle = (LAYER / "recipes-core/bundles/endcap-bundle_0.1.0.bb").read_text()
    assert re.search(r"^inherit bundle\b", bundle, re.M)
    assert 'RAUC_BUNDLE_FORMAT = "verity"' in bundle
    assert 'RAUC_BUNDLE_COMPATIBLE = "${ENDCAP_RAUC_COMPATIBLE}"' in bundle
    assert 'RAUC_KEY_FILE = "${ENDCAP_RAUC_KEY_FILE}"' in bundle
    assert 'RAUC_CERT_FILE = "${ENDCAP_RAUC_CERT_FILE}"' in bundle


def test_no_key_material_in_the_layer():
    for path in YOCTO.rglob("*"):
        if path.is_file():
            text = path.read_text(errors="replace")
            assert "BEGIN" not in text or "PRIVATE KEY" not in text, path
            assert path.suffix not in (".pem", ".key", ".crt"), path


def test_kernel_fragment_enables_what_verity_bundles_need():
    cfg = (LAYER / "recipes-kernel/linux/files/endcap-rauc.cfg").read_text().split()
    for option in ("CONFIG_BLK_DEV_LOOP=y", "CONFIG_SQUASHFS=y", "CONFIG_BLK_DEV_DM=y", "CONFIG_DM_VERITY=y",
                   "CONFIG_EFIVAR_FS=y"):
        assert option in cfg


# --- the service split and the overlay -----------------------------------------------------------------

def _var(text: str, name: str) -> str:
    m = re.search(rf"^{re.escape(name)} \+?= \"(.*?)\"", text, re.M | re.S)
    assert m, name
    return m.group(1)


def test_one_package_per_service_and_only_vision_pulls_jetson_inference():
    recipe = (LAYER / "recipes-endcap/python3-endcap/python3-endcap_0.1.0.bb").read_text()
    services = sorted(p.name for p in (ROOT / "services/endcap").iterdir()
                      if p.is_dir() and (p / "__init__.py").exists() and p.name not in ("core", "sim"))
    assert set(services) >= {"pos", "vision", "offers", "signage", "trust", "maint"}
    packages = re.search(r'^PACKAGES =\+ "(.*?)"', recipe, re.M | re.S).group(1).replace("\\", " ").split()
    for svc in services + ["updater"]:
        assert f"${{PN}}-{svc}" in packages, svc
        assert _var(recipe, f"FILES:${{PN}}-{svc}").split() == [f"${{PYTHON_SITEPACKAGES_DIR}}/endcap/{svc}"], svc
    accel = [m.group(1) for m in re.finditer(r"^(RDEPENDS:\$\{PN\}-\w+) = \"[^\"]*ENDCAP_VISION_ACCEL", recipe, re.M)]
    assert accel == ["RDEPENDS:${PN}-vision"]
    code = "\n".join(line for line in recipe.splitlines() if not line.startswith("#"))
    assert "jetson-inference" not in code
    assert 'ENDCAP_VISION_ACCEL ??= "jetson-inference"' in (LAYER / "conf/distro/endcap.conf").read_text()
    # Dev-only code never reaches the device.
    assert "rm -rf ${D}${PYTHON_SITEPACKAGES_DIR}/endcap/sim" in recipe
    assert "file://services/" in recipe and "file://ota" not in recipe and "file://models" not in recipe


def test_python_dependency_recipes_match_the_pins():
    pins = dict(re.findall(r'"([A-Za-z0-9_-]+)==([0-9.]+)"', (ROOT / "pyproject.toml").read_text()))
    recipes = {p.name for p in (LAYER / "recipes-devtools/python").glob("*.bb")}
    for dist in ("pynng", "tuf", "trackers"):
        assert f"python3-{dist}_{pins[dist]}.bb" in recipes, dist
    assert {"python3-msgspec_0.22.0.bb", "python3-securesystemslib_1.6.0.bb", "python3-supervision_0.31.2.bb"} <= recipes
    for name in recipes:
        text = (LAYER / "recipes-devtools/python" / name).read_text()
        assert re.search(r'^SRC_URI\[sha256sum\] = "[0-9a-f]{64}"$', text, re.M), name
        assert re.search(r"md5=[0-9a-f]{32}", text), name
        assert "inherit pypi" in text, name


def test_overlay_recipe_enables_units_that_exist():
    recipe = (LAYER / "recipes-endcap/endcap-overlay/endcap-overlay_0.1.0.bb").read_text()
    units = _var(recipe, "SYSTEMD_SERVICE:${PN}").replace("\\", " ").split()
    assert "endcap-updater.service" in units and "data.mount" in units
    unit_dir = ROOT / "overlay/usr/lib/systemd/system"
    for unit in units:
        assert (unit_dir / unit).is_file(), unit
    sysusers = (ROOT / "overlay/usr/lib/sysusers.d/endcap.conf").read_text()
    for user in re.findall(r"^u (\S+)", sysusers, re.M):
        assert re.search(rf"--home-dir \S+ {re.escape(user)}\b", recipe), f"{user}: not created at build time"
    dropin = (LAYER / "recipes-endcap/endcap-overlay/files/10-jetson-uda.conf").read_text()
    assert "What=/dev/disk/by-partlabel/UDA" in dropin


def test_oelint_is_installed():
    assert OELINT.exists() or shutil.which("oelint-adv")


def test_split_packages_ship_every_file_the_recipe_builds(tmp_path):
    """Build the package from exactly what the recipe fetches (SRC_URI) with setuptools' build_py, apply
    the recipe's do_install removals, and check each file lands in exactly one split package (bitbake's
    installed-vs-shipped QA would otherwise fail the build) and nothing dev-only or NOC-side is left."""
    recipe = (LAYER / "recipes-endcap/python3-endcap/python3-endcap_0.1.0.bb").read_text()
    src = tmp_path / "src"
    src.mkdir()
    for entry in re.findall(r"file://([^\s\"\\]+)", _var(recipe, "SRC_URI")):
        origin = ROOT / entry
        if origin.is_dir():
            shutil.copytree(origin, src / entry, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy(origin, src / entry)
    out = tmp_path / "site"
    proc = subprocess.run([sys.executable, "-c", "from setuptools import setup; setup()", "-q", "build_py",
                           "--build-lib", str(out)], cwd=src, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in out.iterdir()) == ["endcap"], "only the device runtime is built"
    for line in re.search(r"do_install:append\(\) \{\n(.*?)\n\}", recipe, re.S).group(1).splitlines():
        args = line.split()
        assert args[0] == "rm", line
        for target in args[2:]:
            target = target.replace("${D}${PYTHON_SITEPACKAGES_DIR}", str(out))
            if Path(target).is_dir():
                shutil.rmtree(target)
            elif target.startswith(str(out)):
                Path(target).unlink(missing_ok=True)
    files = [p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()]
    assert not [f for f in files if f.startswith("endcap/sim/") or f in ("endcap/devrun.py", "endcap/launcher.py")]
    patterns = {}
    for pkg in re.search(r'^PACKAGES =\+ "(.*?)"', recipe, re.M | re.S).group(1).replace("\\", " ").split():
        entries = _var(recipe, f"FILES:{pkg}").replace("\\", " ").split()
        patterns[pkg] = [e.replace("${PYTHON_SITEPACKAGES_DIR}/", "") for e in entries if "PYTHON_SITEPACKAGES_DIR" in e]
    for f in files:
        owners = [pkg for pkg, pats in patterns.items()
                  if any(f == p or f.startswith(p + "/") for p in pats)]
        assert len(owners) == 1, f"{f}: packaged by {owners or 'nobody'}"
    # package data the services need at run time travels with them
    assert any(f.startswith("endcap/signage/templates/") for f in files)
    assert any(f.startswith("endcap/defaults/") for f in files)

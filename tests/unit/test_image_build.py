"""The dev image builder's pure parts and its tool steps that need no mmdebstrap (fast, real tools)."""
from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "image" / "debian"))

from endcap_image import config as cfgmod  # noqa: E402
from endcap_image import devicewheel, grub, inputs, layout  # noqa: E402
from endcap_image.build import assemble  # noqa: E402


@pytest.fixture(scope="module")
def cfg():
    return cfgmod.load()


def test_config_loads_and_requirements_are_pinned(cfg):
    assert cfg.compatible == "endcap-dev-x86_64"
    reqs = cfgmod.requirements(cfg.requirements)
    names = {r.split("==")[0].lower() for r in reqs}
    assert {"msgspec", "pynng", "numpy", "opencv-python-headless", "tpm2-pytss", "tuf"} <= names
    # PyGObject and pydbus come from Debian in the guest, never as wheels
    assert not names & {"pygobject", "pycairo", "pydbus"}


@pytest.mark.parametrize("section,key,value,reason", [
    ("image", "rootfs_mib", 4, "too small"),
    ("image", "compatible", "Endcap Dev", "lower-case"),
    ("ids", "disk_guid", "not-a-uuid", "not a UUID"),
    ("ids", "esp_volume_id", "xyz", "8 upper-case hex"),
    ("debian", "packages", ["ok-pkg", "Bad Name"], "not a Debian package name"),
    ("image", "epoch", "soon", "must be int"),
])
def test_bad_config_values_are_named(section, key, value, reason):
    import tomllib

    table = tomllib.loads(cfgmod.DEFAULT_CONFIG.read_text())
    table[section][key] = value
    with pytest.raises(cfgmod.ImageConfigError) as e:
        cfgmod.parse(table)
    assert f"{section}.{key}" in str(e.value) and reason in str(e.value)


def test_layout_order_and_alignment(cfg):
    lay = layout.plan(esp_mib=cfg.esp_mib, rootfs_mib=cfg.rootfs_mib, data_mib=cfg.data_mib, ids=cfg.ids)
    assert [p.name for p in lay.partitions] == ["esp", "rootfs_a", "rootfs_b", "data"]
    assert [p.number for p in lay.partitions] == [1, 2, 3, 4]  # grub.cfg boots (hd0,gpt2) / (hd0,gpt3)
    assert lay.by_name("rootfs_a").size == lay.by_name("rootfs_b").size
    end = 1
    for p in lay.partitions:
        assert p.start_mib == end
        end += p.size_mib
    assert lay.size_mib == end + 1


def test_fs_size_fits_or_names_the_setting():
    assert layout.fs_size_mib(500 * layout.MIB, 1536) % 64 == 0
    assert layout.fs_size_mib(500 * layout.MIB, 1536) >= 650
    with pytest.raises(ValueError, match="image.rootfs_mib"):
        layout.fs_size_mib(1400 * layout.MIB, 1536)


def test_assembled_disk_has_the_planned_gpt(tmp_path):
    ids = cfgmod.load().ids
    lay = layout.plan(esp_mib=2, rootfs_mib=3, data_mib=2, ids=ids)
    part = tmp_path / "esp.bin"
    part.write_bytes(b"ESP!" * 1024)
    disk = tmp_path / "disk.img"
    assemble(lay, {"esp": part}, disk)
    table = json.loads(subprocess.run(["sfdisk", "--json", str(disk)], capture_output=True, text=True, check=True).stdout)
    parts = table["partitiontable"]["partitions"]
    assert [p["name"] for p in parts] == ["esp", "rootfs_a", "rootfs_b", "data"]
    assert parts[1]["uuid"].lower() == ids["rootfs_a_partuuid"]
    assert table["partitiontable"]["id"].lower() == ids["disk_guid"]
    with open(disk, "rb") as f:
        f.seek(lay.by_name("esp").offset)
        assert f.read(4) == b"ESP!"


def test_grub_cfg_renders_and_is_valid_grub_script(tmp_path, cfg):
    text = grub.render_cfg((REPO / "ota/rauc/dev/grub.cfg").read_text(), esp_volume_id=cfg.ids["esp_volume_id"],
                           partuuid_a=cfg.ids["rootfs_a_partuuid"], partuuid_b=cfg.ids["rootfs_b_partuuid"])
    assert "@" not in text.replace("rauc.slot", "")
    assert f"root=PARTUUID={cfg.ids['rootfs_a_partuuid']}" in text and "rauc.slot=B" in text
    path = tmp_path / "grub.cfg"
    path.write_text(text)
    r = subprocess.run(["grub-script-check", str(path)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    path.write_text(text + "\nif [ x ]; then\n")
    assert subprocess.run(["grub-script-check", str(path)], capture_output=True).returncode != 0


def test_grub_cfg_placeholders_are_checked():
    with pytest.raises(ValueError, match="@NOPE@"):
        grub.render_cfg("@ESP_UUID@ @PARTUUID_A@ @PARTUUID_B@ @NOPE@", esp_volume_id="ABCD1234", partuuid_a="a",
                        partuuid_b="b")
    with pytest.raises(ValueError, match="@PARTUUID_B@ missing"):
        grub.render_cfg("@ESP_UUID@ @PARTUUID_A@", esp_volume_id="ABCD1234", partuuid_a="a", partuuid_b="b")


def test_grubenv_block_reads_back_with_grub_editenv(tmp_path):
    env = tmp_path / "grubenv"
    env.write_bytes(grub.envblock(grub.INITIAL_ENV))
    assert env.stat().st_size == 1024
    out = subprocess.run(["grub-editenv", str(env), "list"], capture_output=True, text=True, check=True).stdout
    assert dict(line.split("=", 1) for line in out.splitlines()) == grub.INITIAL_ENV
    subprocess.run(["grub-editenv", str(env), "set", "B_OK=0"], check=True)  # what RAUC's backend does
    assert "B_OK=0" in subprocess.run(["grub-editenv", str(env), "list"], capture_output=True, text=True).stdout


def test_initial_grubenv_matches_the_updaters_model():
    from endcap.updater import grub as ugrub

    assert grub.INITIAL_ENV == ugrub.initial_env()
    assert ugrub.boot(grub.INITIAL_ENV).slot == "A"


def test_content_hash_follows_content_not_time(tmp_path):
    d = tmp_path / "tree"
    d.mkdir()
    (d / "a").write_text("1")
    h1 = inputs.content_hash({"tree": d, "x": "y"})
    (d / "a").touch()
    assert inputs.content_hash({"tree": d, "x": "y"}) == h1
    (d / "a").write_text("2")
    assert inputs.content_hash({"tree": d, "x": "y"}) != h1
    (d / "a").write_text("1")
    (d / "a").chmod(0o755)
    assert inputs.content_hash({"tree": d, "x": "y"}) != h1


def test_dev_only_paths():
    assert devicewheel.is_dev_only("endcap/sim/clips.py")
    assert devicewheel.is_dev_only("endcap/devrun.py") and devicewheel.is_dev_only("endcap/launcher.py")
    assert not devicewheel.is_dev_only("endcap/simple.py") and not devicewheel.is_dev_only("endcap/signage/app.py")


def test_device_pyproject_drops_only_the_dev_scripts():
    text = (REPO / "pyproject.toml").read_text()
    out = devicewheel.device_pyproject(text)
    assert 'endcap = "endcap.cli:main"' in out
    assert "endcap-ota" not in out and "endcap-model" not in out
    assert out.count("\n") == text.rstrip("\n").count("\n") + 1 - 2


def test_imports_are_resolved_and_split_into_eager_and_lazy():
    src = "from .sim import x\nimport endcap_models.sign\ndef f():\n    from ..devrun import run\n"
    assert {"endcap.sim", "endcap.sim.x", "endcap_models.sign"} <= devicewheel.imported_modules(src, "endcap.cli")
    assert "endcap.devrun" not in devicewheel.imported_modules(src, "endcap.pkg.mod")
    assert "endcap.devrun" in devicewheel.imported_modules(src, "endcap.pkg.mod", lazy=True)


def test_device_wheel_has_no_dev_only_code(tmp_path):
    wheel = devicewheel.build(REPO, tmp_path, REPO / ".venv/bin/pip")
    names = zipfile.ZipFile(wheel).namelist()
    assert "endcap/cli.py" in names and "endcap/trust/service.py" in names
    assert not [n for n in names if n.startswith(("endcap/sim/", "endcap_ota/", "endcap_models/"))]
    assert "endcap/devrun.py" not in names and "endcap/launcher.py" not in names
    assert devicewheel.check_wheel(wheel) == []
    # only the dev commands of the CLI (`endcap run`, `endcap sim`) reach for dev code
    assert set(devicewheel.lazy_dev_imports(wheel)) == {"endcap/cli.py"}


def test_check_wheel_catches_dev_code(tmp_path):
    bad = tmp_path / "endcap-0-py3-none-any.whl"
    with zipfile.ZipFile(bad, "w") as z:
        z.writestr("endcap/sim/clips.py", "")
        z.writestr("endcap/pos/x.py", "from ..sim import clips\n")
        z.writestr("endcap-0.dist-info/entry_points.txt", "[console_scripts]\nendcap-ota = endcap_ota.cli:main\n")
    problems = "\n".join(devicewheel.check_wheel(bad))
    assert "endcap/sim/clips.py: dev-only file" in problems
    assert "endcap/pos/x.py: imports dev-only module endcap.sim" in problems
    assert "dev-only console script endcap-ota" in problems

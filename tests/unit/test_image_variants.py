"""The update-cycle firmware variants: the config edit (pure) and the debugfs edits on a real ext4 image
shaped like the dev rootfs (mkfs.ext4 -d, debugfs, e2fsck: real tools, no QEMU)."""
from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "image" / "debian"))

from endcap_image import variants  # noqa: E402

DEV_CONFIG = REPO / "image" / "debian" / "overlay-dev" / "etc" / "endcap" / "endcap.toml"


def test_unhealthy_config_breaks_only_the_pos_link_and_shortens_the_gate(tmp_path):
    before = tomllib.loads(DEV_CONFIG.read_text())
    after = tomllib.loads(variants.unhealthy_config(DEV_CONFIG.read_text()))
    assert after["pos"]["sql"]["url"] == variants.MISSING_POS_DB != before["pos"]["sql"]["url"]
    assert after["updater"]["confirm_timeout_s"] == variants.CONFIRM_TIMEOUT_S
    for section in ("vision", "offers", "signage", "trust", "maint"):
        assert after[section] == before[section], section
    # still a configuration the services accept: the failure comes at run time, from the missing database
    from endcap.cli import main as endcap_main

    edited = tmp_path / "endcap.toml"
    edited.write_text(variants.unhealthy_config(DEV_CONFIG.read_text()))
    assert endcap_main(["check-config", str(edited)]) == 0


@pytest.mark.parametrize("text, why", [
    ("[pos.sql]\n[updater]\n", "sqlite url"),
    ('[pos.sql]\nurl = "sqlite:///a"\n', "no \\[updater\\]"),
    ('[pos.sql]\nurl = "sqlite:///a"\n[updater]\nconfirm_timeout_s = 5\n', "already set"),
])
def test_unhealthy_config_refuses_a_config_it_cannot_edit(text, why):
    with pytest.raises(ValueError, match=why):
        variants.unhealthy_config(text)


def test_unknown_variant_is_refused():
    with pytest.raises(ValueError, match="variant 'broken'"):
        variants.debugfs_requests("broken", {})


@pytest.fixture
def rootfs(tmp_path):
    tree = tmp_path / "tree"
    (tree / "etc/endcap").mkdir(parents=True)
    (tree / "usr/lib/systemd").mkdir(parents=True)
    (tree / "usr/bin").mkdir(parents=True)
    (tree / "etc/endcap/version").write_text("1.0.0\n")
    (tree / "etc/endcap/endcap.toml").write_text(DEV_CONFIG.read_text())
    (tree / "usr/lib/systemd/systemd").write_bytes(b"\x7fELF init")
    wants = tree / variants.WANTS.lstrip("/")
    wants.mkdir(parents=True)
    for unit in ("endcap-pos.service", "endcap-trust.service", "rauc.service"):
        (wants / unit).symlink_to(f"/usr/lib/systemd/system/{unit}")
    image = tmp_path / "rootfs.ext4"
    subprocess.run(["mkfs.ext4", "-q", "-F", "-d", str(tree), str(image), "16M"], check=True, capture_output=True)
    return image


@pytest.mark.parametrize("variant", ["good", "unhealthy", "unbootable"])
def test_each_variant_is_a_clean_copy_with_its_version(rootfs, tmp_path, variant):
    out = variants.make_rootfs(rootfs, tmp_path / f"{variant}.ext4", variant, "7.1.0")
    assert variants.read_file(out, "/etc/endcap/version") == "7.1.0\n"
    assert variants.read_file(rootfs, "/etc/endcap/version") == "1.0.0\n"  # the source is never written
    config = tomllib.loads(variants.read_file(out, variants.CONFIG))
    assert (config["pos"]["sql"]["url"] == variants.MISSING_POS_DB) == (variant == "unhealthy")
    init = variants.debugfs(out, ["stat /usr/lib/systemd/systemd"])
    assert ("Type: symlink" in init) == (variant == "unbootable"), init
    if variant == "unbootable":
        assert "/usr/bin/false" in variants.debugfs(out, ["ls -l /usr/lib/systemd"]) or \
            "/usr/bin/false" in init


def test_bare_disables_the_endcap_units_and_nothing_else(rootfs, tmp_path):
    out = variants.make_rootfs(rootfs, tmp_path / "bare.ext4", "bare", "1.0.0",
                               ("endcap-pos.service", "endcap-trust.service"))
    listing = variants.debugfs(out, [f"ls {variants.WANTS}"])
    assert "rauc.service" in listing and "endcap-" not in listing.split("\n", 1)[1], listing
    with pytest.raises(ValueError, match="bare: services"):
        variants.debugfs_requests("bare", {"version": Path("v")}, ("rauc.service",))


def test_a_failing_debugfs_request_is_an_error_naming_the_image(rootfs):
    with pytest.raises(RuntimeError, match="rootfs.ext4.*File not found"):
        variants.debugfs(rootfs, ["rm /etc/endcap/nope"], write=True)
    with pytest.raises(RuntimeError, match="cannot read /nope"):
        variants.read_file(rootfs, "/nope")


def test_bare_disk_puts_the_bare_rootfs_into_slot_a_only(rootfs, tmp_path):
    from types import SimpleNamespace

    disk = tmp_path / "disk.img"
    subprocess.run(["truncate", "-s", "80M", str(disk)], check=True)
    table = "label: gpt\n" + "".join(f"size=24M, name={n}\n" for n in ("rootfs_a", "rootfs_b")) + "name=data\n"
    subprocess.run(["sfdisk", "-q", str(disk)], input=table, text=True, check=True, capture_output=True)
    starts = {p["name"]: p["start"] * 512 for p in json.loads(subprocess.run(
        ["sfdisk", "--json", str(disk)], check=True, capture_output=True, text=True).stdout)["partitiontable"]["partitions"]}
    for name in ("rootfs_a", "rootfs_b"):  # the built disk carries the full rootfs in A (and B here)
        subprocess.run(["dd", f"if={rootfs}", f"of={disk}", "conv=notrunc", "oflag=seek_bytes", f"seek={starts[name]}",
                        "status=none"], check=True)
    image = SimpleNamespace(disk=disk, rootfs=rootfs, info={"version": "1.0.0", "units": [
        "endcap-pos.service", "endcap-trust.service", "data.mount"]})
    bare = variants.bare_disk(image, tmp_path / "bare.img")

    def wants(source: Path, name: str) -> str:
        out = tmp_path / f"{source.stem}-{name}.ext4"
        subprocess.run(["dd", f"if={source}", f"of={out}", "bs=1M", f"skip={starts[name] // (1 << 20)}", "count=16",
                        "status=none"], check=True)
        return variants.debugfs(out, [f"ls {variants.WANTS}"])

    assert "endcap-pos.service" not in wants(bare, "rootfs_a") and "rauc.service" in wants(bare, "rootfs_a")
    assert "endcap-pos.service" in wants(bare, "rootfs_b")
    assert "endcap-pos.service" in wants(disk, "rootfs_a")  # the built disk is never written

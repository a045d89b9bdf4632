"""The maintenance page's network settings reach systemd-networkd on both image tracks.

The page (endcap-maint) writes ``10-endcap-<iface>.network`` into ``[maint] network_dir`` on the data
partition; networkd reads ``/etc/systemd/network``, which each image build turns into a link to that
folder (Debian: image/debian/customize.sh, Yocto: endcap-image.bb); a drop-in orders networkd after the
data partition's mount; tmpfiles makes the folder writable by endcap-maint and readable by
systemd-network. Checked here with the real tools offline: the build snippets run on a scratch root,
systemd-sysusers + systemd-tmpfiles make the folder, the maintenance page's own writer puts a file in it,
``systemd-analyze verify`` builds the boot transaction with the drop-in (and finds a cycle when one is
planted). The guest boot in QEMU is the system test's job.
"""
from __future__ import annotations

import re
import shutil
import stat
import subprocess
import tomllib
from pathlib import Path

import pytest

from endcap.maint.config import MaintConfig
from endcap.maint.network import NetworkdApplier, Settings

REPO = Path(__file__).resolve().parents[3]
OVERLAY = REPO / "overlay"
UNITS = OVERLAY / "usr/lib/systemd/system"
DROPIN = UNITS / "systemd-networkd.service.d/50-endcap.conf"
CUSTOMIZE = REPO / "image/debian/customize.sh"
YOCTO_IMAGE = REPO / "image/yocto/meta-endcap/recipes-core/images/endcap-image.bb"
NET_DIR = "/var/lib/endcap/network"
ETC_NET = "/etc/systemd/network"


def unit_values(path: Path, section: str, key: str) -> list[str]:
    """Every space-separated value of ``key`` in ``[section]`` (repeated keys add up)."""
    out, current = [], None
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            current = line.strip("[]")
            continue
        k, _, v = line.partition("=")
        if current == section and k.strip() == key:
            out += v.split()
    return out


def resolve_in(root: Path, path: str) -> Path:
    """``path`` resolved the way the device sees it: absolute links point inside ``root``."""
    cur = root
    for part in Path(path).relative_to("/").parts:
        cur = cur / part
        hops = 0
        while cur.is_symlink():
            hops += 1
            assert hops < 10, f"{path}: link loop"
            target = Path(cur.readlink())
            cur = root / target.relative_to("/") if target.is_absolute() else (cur.parent / target)
    return cur


# --- one path everywhere --------------------------------------------------------------------------------

def test_device_config_writes_where_networkd_reads():
    table = tomllib.loads((OVERLAY / "etc/endcap/endcap.toml").read_text())
    assert table["maint"]["network_dir"] == NET_DIR
    assert "Known gap" not in (OVERLAY / "etc/endcap/endcap.toml").read_text()


@pytest.mark.parametrize("path", [OVERLAY / "etc/endcap/endcap.toml",
                                  REPO / "image/debian/overlay-dev/etc/endcap/endcap.toml"])
def test_each_shipped_config_lands_in_the_network_folder(path):
    # the dev image's config leaves network_dir at its default, /etc/systemd/network: the link leads there too
    network_dir = tomllib.loads(path.read_text())["maint"].get("network_dir", MaintConfig().network_dir)
    assert network_dir in (NET_DIR, ETC_NET), f"{path}: network_dir {network_dir} is not read by networkd"


def test_tmpfiles_makes_the_folder_for_maint_readable_by_networkd():
    lines = [ln.split() for ln in (OVERLAY / "usr/lib/tmpfiles.d/endcap.conf").read_text().splitlines()
             if ln.strip() and not ln.startswith("#")]
    ours = [f for f in lines if f[1] == NET_DIR]
    assert len(ours) == 1, f"tmpfiles: {NET_DIR} declared {len(ours)} times"
    kind, _, mode, user, group = ours[0][:5]
    assert (kind, user, group) == ("d", "endcap-maint", "endcap")
    assert int(mode, 8) & 0o005 == 0o005, f"{NET_DIR}: mode {mode} keeps systemd-network out"
    assert int(mode, 8) & 0o022 == 0, f"{NET_DIR}: mode {mode} lets others write networkd's config"
    # not inside a 0750 state dir: systemd-network could not traverse it
    assert not NET_DIR.startswith("/var/lib/endcap/maint/")


def test_maint_unit_may_write_the_folder():
    assert NET_DIR in unit_values(UNITS / "endcap-maint.service", "Service", "ReadWritePaths")


def test_networkd_waits_for_the_data_partition_but_does_not_need_it():
    assert "var-lib-endcap.mount" in unit_values(DROPIN, "Unit", "After")
    assert "var-lib-endcap.mount" in unit_values(DROPIN, "Unit", "Wants")
    # a data partition that fails to mount must not take the network (and the maintenance page) down
    for key in ("Requires", "RequiresMountsFor", "BindsTo", "Requisite"):
        assert not unit_values(DROPIN, "Unit", key), f"drop-in: {key}= would stop networkd without /data"
    assert unit_values(UNITS / "var-lib-endcap.mount", "Mount", "Where") == ["/var/lib/endcap"]
    assert NET_DIR.startswith("/var/lib/endcap/")


def test_image_default_network_loses_to_the_page_file():
    # networkd uses the first file in lexical order across all its folders that matches the link
    defaults = [p.name for p in (OVERLAY / "usr/lib/systemd/network").glob("*.network")]
    page_file = NetworkdApplier(NET_DIR, "eth0", None).path.name
    assert defaults and all(page_file < d for d in defaults), (page_file, defaults)


# --- the build steps, run on a scratch root ---------------------------------------------------------------

def customize_snippet() -> str:
    text = CUSTOMIZE.read_text()
    m = re.search(r'^say "/etc/systemd/network.*?^ln -sfn [^\n]*\n', text, re.S | re.M)
    assert m, "customize.sh: no /etc/systemd/network link step"
    # it must run after the overlays are copied (an overlay must not bring the folder back)
    assert text.index(m.group(0)) > text.index('cp -a --no-preserve=ownership "$o"/. "$root"/')
    return m.group(0)


def yocto_snippet() -> str:
    text = YOCTO_IMAGE.read_text()
    assert re.search(r'^ROOTFS_POSTPROCESS_COMMAND \+= "[^"]*\bendcap_networkd_link\b', text, re.M)
    m = re.search(r"^endcap_networkd_link\(\) \{\n(.*?)^\}", text, re.S | re.M)
    assert m, "endcap-image.bb: no endcap_networkd_link function"
    body = m.group(1)
    for var, value in (("IMAGE_ROOTFS", '"$root"'), ("sysconfdir", "/etc"), ("localstatedir", "/var")):
        body = body.replace("${%s}" % var, value)
    assert "${" not in body, f"endcap_networkd_link uses variables this test does not know: {body}"
    return body


def run_snippet(snippet: str, root: Path) -> subprocess.CompletedProcess:
    script = f'set -euo pipefail\nroot="{root}"\nsay() {{ echo "[customize] $*"; }}\n{snippet}'
    return subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=30)


@pytest.mark.parametrize("track", ["debian", "yocto"])
def test_build_step_links_etc_systemd_network_to_the_folder(tmp_path, track):
    snippet = customize_snippet() if track == "debian" else yocto_snippet()
    root = tmp_path / "root"
    (root / "etc/systemd/network").mkdir(parents=True)  # the empty folder the systemd package ships
    r = run_snippet(snippet, root)
    assert r.returncode == 0, r.stderr
    link = root / "etc/systemd/network"
    assert link.is_symlink() and str(link.readlink()) == NET_DIR
    r = run_snippet(snippet, root)  # an image rebuilt on the same root keeps the one link
    assert r.returncode == 0, r.stderr
    assert str(link.readlink()) == NET_DIR


@pytest.mark.parametrize("track", ["debian", "yocto"])
def test_build_step_refuses_to_drop_files_in_etc_systemd_network(tmp_path, track):
    snippet = customize_snippet() if track == "debian" else yocto_snippet()
    root = tmp_path / "root"
    (root / "etc/systemd/network").mkdir(parents=True)
    (root / "etc/systemd/network/50-vendor.network").write_text("[Match]\nName=eth1\n")
    r = run_snippet(snippet, root)
    assert r.returncode != 0
    assert (root / "etc/systemd/network/50-vendor.network").is_file()


def _device_root(tmp_path: Path) -> tuple[Path, dict[str, int]]:
    """The overlay, users and tmpfiles of the image, with the Debian build's link, on a scratch root."""
    root = tmp_path / "root"
    shutil.copytree(OVERLAY, root, symlinks=True)
    (root / "etc/systemd/network").mkdir(parents=True)
    (root / "etc/group").write_text("root:x:0:\nvideo:x:44:\nrender:x:105:\ninput:x:104:\ntss:x:106:\n"
                                    "systemd-journal:x:999:\nsystemd-network:x:998:\n")
    (root / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/sh\n"
                                     "systemd-network:x:998:998:systemd Network Management:/:/usr/sbin/nologin\n")
    r = subprocess.run(["systemd-sysusers", f"--root={root}"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    users = {ln.split(":")[0]: int(ln.split(":")[2]) for ln in (root / "etc/passwd").read_text().splitlines()}
    r = run_snippet(customize_snippet(), root)
    assert r.returncode == 0, r.stderr
    (root / "data/endcap").mkdir(parents=True)
    (root / "var/lib").mkdir(parents=True, exist_ok=True)
    (root / "var/lib/endcap").symlink_to("../../data/endcap")  # stands in for var-lib-endcap.mount
    (root / "run").mkdir(exist_ok=True)
    r = subprocess.run(["systemd-tmpfiles", f"--root={root}", "--create", str(root / "usr/lib/tmpfiles.d/endcap.conf")],
                       capture_output=True, text=True, cwd=root, timeout=60)
    assert r.returncode == 0, r.stderr
    return root, users


def _others_can_read(root: Path, path: str) -> list[str]:
    """Where a user that is neither owner nor in the group (systemd-network) is stopped on ``path``."""
    stops, cur = [], root
    for part in Path(path).relative_to("/").parts:
        cur = cur / part
        while cur.is_symlink():
            t = Path(cur.readlink())
            cur = root / t.relative_to("/") if t.is_absolute() else (cur.parent / t)
        mode = cur.stat().st_mode
        need = stat.S_IXOTH if stat.S_ISDIR(mode) else stat.S_IROTH
        if not mode & need:
            stops.append(f"{cur.relative_to(root)} {oct(mode & 0o7777)}")
    return stops


def test_page_file_is_what_networkd_finds_in_etc_systemd_network(tmp_path):
    root, users = _device_root(tmp_path)
    folder = resolve_in(root, NET_DIR)
    st = folder.stat()
    assert st.st_uid == users["endcap-maint"] and stat.S_IMODE(st.st_mode) == 0o755
    # the maintenance page's own writer, pointed at the device's folder inside the scratch root
    text = Settings.parse({"mode": "static", "address": "192.168.7.20/24", "gateway": "192.168.7.1"}).render("eth0")
    NetworkdApplier(str(root / NET_DIR.lstrip("/")), "eth0", None).write(text)
    seen = resolve_in(root, f"{ETC_NET}/10-endcap-eth0.network")
    assert seen.read_text() == text
    assert _others_can_read(root, f"{ETC_NET}/10-endcap-eth0.network") == []
    # and the state next to it stays closed to systemd-network
    assert _others_can_read(root, "/var/lib/endcap/maint") != []


def test_systemd_conf_files_follow_a_linked_config_folder(tmp_path):
    """systemd's conf-files code (networkd lists .network files with it) follows an absolute folder link
    inside the root, and a link whose target is missing (data partition not mounted) is just empty."""
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc/tmpfiles.d").symlink_to(NET_DIR)
    r = subprocess.run(["systemd-tmpfiles", f"--root={root}", "--cat-config"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and NET_DIR not in r.stdout, r.stderr
    (root / NET_DIR.lstrip("/")).mkdir(parents=True)
    (root / NET_DIR.lstrip("/") / "10-x.conf").write_text("d /endcap-probe 0755 root root -\n")
    r = subprocess.run(["systemd-tmpfiles", f"--root={root}", "--cat-config"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert f"{NET_DIR}/10-x.conf" in r.stdout and "/endcap-probe" in r.stdout


# --- the boot transaction -----------------------------------------------------------------------------

def _verify_root(tmp_path: Path) -> Path:
    """This host's units (Debian's systemd 252, as in the dev image) plus the overlay, units enabled as
    the image enables them, the executables verify looks for present as stubs."""
    root = tmp_path / "vroot"
    (root / "usr/lib/systemd").mkdir(parents=True)
    shutil.copytree("/lib/systemd/system", root / "usr/lib/systemd/system", symlinks=True)
    shutil.copytree(OVERLAY, root, dirs_exist_ok=True, symlinks=True)
    (root / "lib").symlink_to("usr/lib")
    for exe in ("usr/bin/endcap", "usr/bin/weston", "usr/bin/networkctl", "usr/lib/systemd/systemd-networkd"):
        p = root / exe
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text("#!/bin/sh\nexit 0\n")
        p.chmod(0o755)
    etc = root / "etc/systemd/system"
    for target, units in (("local-fs.target", ["data.mount", "var-lib-endcap.mount", "var-lib-systemd.mount",
                                               "tmp.mount", "var-tmp.mount", "var-log.mount"]),
                          ("multi-user.target", ["systemd-networkd.service", "endcap-maint.service"])):
        (etc / f"{target}.wants").mkdir(parents=True, exist_ok=True)
        for u in units:
            (etc / f"{target}.wants" / u).symlink_to(f"/usr/lib/systemd/system/{u}")
    return root


def _verify(root: Path) -> subprocess.CompletedProcess:
    units = ["multi-user.target", "systemd-networkd.service", "var-lib-endcap.mount", "data.mount",
             "endcap-maint.service"]
    return subprocess.run(["systemd-analyze", "verify", "--man=no", f"--root={root}", *units],
                          capture_output=True, text=True, cwd=root / "usr/lib/systemd/system", timeout=120)


def test_boot_transaction_with_the_dropin_has_no_cycle(tmp_path):
    r = _verify(_verify_root(tmp_path))
    assert r.returncode == 0, r.stderr
    assert r.stderr.strip() == "", r.stderr


def test_verify_finds_a_cycle_through_the_dropin(tmp_path):
    root = _verify_root(tmp_path)
    dropin = root / "usr/lib/systemd/system/systemd-networkd.service.d/50-endcap.conf"
    dropin.write_text(dropin.read_text() + "Before=var-lib-endcap.mount\n")
    r = _verify(root)
    assert "ordering cycle" in r.stderr, r.stderr

"""Firmware versions for the update-cycle proof: signed verity bundles of the dev image's rootfs, each a
copy of the built rootfs edited in place with ``debugfs -w`` (no mounts), labelled with its version.

- ``good``: the same firmware as a newer version (``/etc/endcap/version`` says so).
- ``unhealthy``: boots, but its POS link points at a database that does not exist, so pos never reports
  healthy and the updater's health gate (shortened to ``CONFIRM_TIMEOUT_S``) must roll it back.
- ``unbootable``: init exits at once (``/usr/lib/systemd/systemd`` is ``/usr/bin/false``): the kernel panics,
  ``panic=10`` reboots, and GRUB's A/B script must fall back to the other slot by itself.
- ``bare`` (no bundle; ``bare_disk``): the same build with no Endcap service enabled, the boot benchmark's
  anchor: what the Debian image costs to boot without us.

The edits are pure functions of text (``unhealthy_config``) or fixed debugfs requests (``debugfs_requests``);
``bundle`` does the I/O and caches the result beside the image, one build at a time across processes.
"""
from __future__ import annotations

import fcntl
import re
import shutil
import subprocess
import tempfile
import tomllib
from pathlib import Path

VARIANTS = ("good", "unhealthy", "unbootable", "bare")
WANTS = "/etc/systemd/system/multi-user.target.wants"
CONFIG = "/etc/endcap/endcap.toml"
CONFIRM_TIMEOUT_S = 90
MISSING_POS_DB = "sqlite:///var/lib/endcap/pos/source/missing.db"


def unhealthy_config(text: str) -> str:
    """The dev image's endcap.toml with a POS source that does not exist and a short health gate.

    Raises ValueError when ``text`` lacks the ``[pos.sql] url`` line or the ``[updater]`` table it edits."""
    url_line = re.compile(r'^url\s*=\s*"sqlite:[^"]*"\s*$', re.M)
    if len(url_line.findall(text)) != 1:
        raise ValueError(f"{CONFIG}: expected exactly one sqlite url line in [pos.sql]")
    if not re.search(r"^\[updater\]\s*$", text, re.M):
        raise ValueError(f"{CONFIG}: no [updater] table")
    if re.search(r"^confirm_timeout_s\s*=", text, re.M):
        raise ValueError(f"{CONFIG}: confirm_timeout_s already set")
    out = url_line.sub(f'url = "{MISSING_POS_DB}"', text)
    out = re.sub(r"^\[updater\]\s*$", f"[updater]\nconfirm_timeout_s = {CONFIRM_TIMEOUT_S}", out, count=1, flags=re.M)
    parsed = tomllib.loads(out)  # still valid TOML, and the edits landed where the services read them
    assert parsed["pos"]["sql"]["url"] == MISSING_POS_DB and parsed["updater"]["confirm_timeout_s"] == CONFIRM_TIMEOUT_S
    return out


def debugfs_requests(variant: str, files: dict[str, Path], services: tuple[str, ...] = ()) -> list[str]:
    """debugfs commands that turn a copy of the rootfs into ``variant``. ``files`` names host files to
    write: ``version`` (always), ``config`` (``unhealthy``); ``services``: the Endcap units ``bare`` disables."""
    if variant not in VARIANTS:
        raise ValueError(f"variant {variant!r}: must be one of {', '.join(VARIANTS)}")
    reqs = ["cd /etc/endcap", "rm version", f"write {files['version']} version"]
    if variant == "unhealthy":
        reqs += ["rm endcap.toml", f"write {files['config']} endcap.toml"]
    if variant == "unbootable":
        reqs += ["cd /usr/lib/systemd", "rm systemd", "symlink systemd /usr/bin/false"]
    if variant == "bare":
        if not services or not all(re.fullmatch(r"endcap-[a-z]+\.service", u) for u in services):
            raise ValueError(f"bare: services {services!r} must name endcap-<name>.service units")
        reqs += [f"cd {WANTS}", *(f"rm {u}" for u in services)]
    return reqs


def debugfs(image: Path, requests: list[str], *, write: bool = False) -> str:
    """Run ``requests`` on the ext4 ``image``; its output. Raises RuntimeError when debugfs reports an error."""
    with tempfile.NamedTemporaryFile("w", suffix=".debugfs") as script:
        script.write("\n".join(requests) + "\n")
        script.flush()
        r = subprocess.run(["debugfs", *(["-w"] if write else []), "-f", script.name, str(image)],
                           capture_output=True, text=True)
    # debugfs exits 0 even when a request fails; its errors start with the command's name and a colon
    errors = [line for line in r.stderr.splitlines()
              if line.strip() and not line.startswith("debugfs ") and ": " in line]
    if r.returncode != 0 or errors:
        raise RuntimeError(f"debugfs on {image}: {'; '.join(errors) or r.stderr.strip()}")
    return r.stdout


def read_file(image: Path, path: str) -> str:
    """The text of ``path`` inside the ext4 ``image``."""
    r = subprocess.run(["debugfs", "-R", f"cat {path}", str(image)], capture_output=True, text=True)
    errors = [line for line in r.stderr.splitlines() if line.strip() and not line.startswith("debugfs ")]
    if r.returncode != 0 or errors:
        raise RuntimeError(f"debugfs: cannot read {path} in {image}: {'; '.join(errors) or r.stderr.strip()}")
    return r.stdout


def make_rootfs(source: Path, dest: Path, variant: str, version: str, services: tuple[str, ...] = ()) -> Path:
    """A copy of the rootfs image ``source`` at ``dest``, edited into ``variant`` labelled ``version``."""
    shutil.copyfile(source, dest)
    with tempfile.TemporaryDirectory(prefix="endcap-variant-") as td:
        files = {"version": Path(td) / "version", "config": Path(td) / "endcap.toml"}
        files["version"].write_text(version + "\n")
        if variant == "unhealthy":
            files["config"].write_text(unhealthy_config(read_file(source, CONFIG)))
        debugfs(dest, debugfs_requests(variant, files, services), write=True)
    r = subprocess.run(["e2fsck", "-fn", str(dest)], capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"e2fsck of the {variant} rootfs {dest}: {r.stdout[-2000:]}{r.stderr[-1000:]}")
    return dest


def bundle(image, version: str, variant: str = "good") -> Path:
    """The signed verity bundle of ``image``'s rootfs as ``variant`` labelled ``version`` (cached in the
    image's directory; built under the image cache's lock)."""
    from endcap_ota.bundle import build_bundle

    from . import build

    name = f"endcap-dev-{version}" + ("" if variant == "good" else f"-{variant}")
    out = image.dir / f"{name}.raucb"
    with open(build.CACHE / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not out.is_file():
            rootfs = make_rootfs(image.rootfs, image.dir / f"{name}.rootfs.partial", variant, version)
            tmp = out.with_suffix(".partial")
            tmp.unlink(missing_ok=True)
            try:
                build_bundle(rootfs, tmp, version=version, compatible=image.info["compatible"],
                             pki=build.ensure_pki(), fmt="verity")
                tmp.rename(out)
            finally:
                rootfs.unlink(missing_ok=True)
    return out


def bare_disk(image, dest: Path) -> Path:
    """A copy of ``image``'s disk whose slot A holds the ``bare`` rootfs (no Endcap unit enabled)."""
    import json

    services = tuple(u for u in image.info["units"] if u.startswith("endcap-") and u.endswith(".service"))
    rootfs = make_rootfs(image.rootfs, dest.with_suffix(".rootfs"), "bare", image.info["version"], services)
    subprocess.run(["cp", "--sparse=always", str(image.disk), str(dest)], check=True, capture_output=True)
    table = json.loads(subprocess.run(["sfdisk", "--json", str(dest)], check=True, capture_output=True,
                                      text=True).stdout)["partitiontable"]
    slot_a = next(p for p in table["partitions"] if p.get("name") == "rootfs_a")
    if rootfs.stat().st_size > slot_a["size"] * table.get("sectorsize", 512):
        raise RuntimeError(f"bare rootfs {rootfs} does not fit slot A of {dest}")
    subprocess.run(["dd", f"if={rootfs}", f"of={dest}", "bs=4M", "conv=notrunc", "oflag=seek_bytes",
                    f"seek={slot_a['start'] * table.get('sectorsize', 512)}", "status=none"], check=True,
                   capture_output=True)
    rootfs.unlink()
    return dest


def media(bundles: list[Path], workdir: Path) -> Path:
    """An ext4 disk image holding ``bundles`` (attached read-only: the guest installs from it)."""
    tree = workdir / "bundle-media"
    tree.mkdir(parents=True, exist_ok=True)
    for b in bundles:
        (tree / b.name).hardlink_to(b)
    image = workdir / "bundle-media.ext4"
    size_mib = int(sum(b.stat().st_size for b in bundles) * 1.05) // (1 << 20) + 64
    r = subprocess.run(["mkfs.ext4", "-q", "-F", "-m", "0", "-O", "^has_journal", "-L", "bundles", "-d", str(tree),
                        str(image), f"{size_mib}M"], capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"mkfs.ext4 of the bundle media failed: {r.stderr}")
    return image

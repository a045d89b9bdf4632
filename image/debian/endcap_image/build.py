"""`make image`: mmdebstrap + overlay -> rootfs.ext4 -> GPT disk (ESP | rootfs_a | rootfs_b | data).

Built without mounts or loop devices (mkfs.ext4 -d, mkfs.vfat + mtools, sfdisk, dd), reproducible
inputs (SOURCE_DATE_EPOCH, fixed UUIDs and hash seed, sorted trees) and cached under
``.cache/endcap/image/<content hash>/``: a second `make image` with the same inputs does nothing.
"""
from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from . import config as cfgmod
from . import devicewheel, grub, inputs, layout

REPO = cfgmod.REPO
HERE = cfgmod.HERE
CACHE = REPO / ".cache" / "endcap" / "image"
ENDCAP_SERVICES_WITH_UNITS = "overlay/usr/lib/systemd/system"
# the builder's own modules that shape the image (qemu.py, guest.py and __main__.py do not)
BUILDER_MODULES = ("build.py", "config.py", "devicewheel.py", "grub.py", "inputs.py", "layout.py")
MOUNT_UNITS = ("data.mount", "var-lib-endcap.mount", "tmp.mount", "var-tmp.mount", "var-lib-systemd.mount",
               "var-log.mount", "boot-efi.mount")


@dataclass(frozen=True)
class Image:
    """A built image: the disk, the rootfs filesystem image (what a bundle carries) and facts about it."""

    dir: Path
    disk: Path
    rootfs: Path
    info: dict


def log(msg: str) -> None:
    print(f"[image] {msg}", file=sys.stderr, flush=True)


def run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    r = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if r.returncode != 0:
        raise RuntimeError(f"{cmd[0]} failed ({r.returncode}): {' '.join(cmd)}\n{r.stdout[-3000:]}{r.stderr[-3000:]}")
    return r


def pki_dir() -> Path:
    return CACHE / "pki"


def ensure_pki():
    """The dev fleet PKI (endcap_ota.pki), made once; its keyring goes into the image."""
    from endcap_ota import pki as ota_pki

    d = pki_dir()
    if not (d / ota_pki.KEYRING).is_file():
        d.parent.mkdir(parents=True, exist_ok=True)
        log(f"creating the dev fleet PKI in {d}")
        ota_pki.create_pki(d)
    return ota_pki.load_pki(d)


def dev_clip() -> Path:
    """The replayed camera clip of the dev image (endcap.sim.clips, cached by content hash)."""
    from endcap.sim.clips import build as build_clip

    return build_clip().video


def ensure_wheels(cfg: cfgmod.ImageConfig) -> Path:
    """The dependency wheels (pinned, CPython 3.11), downloaded or built once into the cache."""
    d = CACHE / "wheels"
    d.mkdir(parents=True, exist_ok=True)
    reqs = cfgmod.requirements(cfg.requirements)
    have = {p.name.split("-")[0].lower().replace("_", "-") + "==" + p.name.split("-")[1] for p in d.glob("*.whl")}
    missing = [r for r in reqs if r.lower().replace("_", "-") not in have]
    if missing:
        log(f"fetching {len(missing)} wheels: {' '.join(missing)}")
        run([str(REPO / ".venv/bin/pip"), "wheel", "--no-deps", "-q", "-w", str(d), *missing])
    return d


def input_hash(cfg: cfgmod.ImageConfig, keyring: Path, clip: Path) -> str:
    return inputs.content_hash({
        "config": HERE / "config.toml", "requirements": cfg.requirements,
        **{f"builder/{m}": HERE / "endcap_image" / m for m in BUILDER_MODULES},
        "customize": HERE / "customize.sh", "overlay": REPO / "overlay", "overlay-dev": HERE / "overlay-dev",
        "rauc": REPO / "ota" / "rauc" / "dev", "services": REPO / "services", "pyproject": REPO / "pyproject.toml",
        "keyring": keyring, "clip": clip,
    })  # docs/image.md is copied in but not hashed: editing the docs does not rebuild the image


def enabled_units() -> list[str]:
    """The units the image enables: every service of the gateway that has a unit, and the mounts."""
    from endcap.gateway import SERVICES

    units = [f"endcap-{s}.service" for s in sorted(SERVICES)
             if (REPO / ENDCAP_SERVICES_WITH_UNITS / f"endcap-{s}.service").is_file()]
    return units + list(MOUNT_UNITS)


def mmdebstrap(cfg: cfgmod.ImageConfig, rootdir: Path, env: dict[str, str]) -> None:
    sources = [f"deb {cfg.mirror} {cfg.suite} main", f"deb {cfg.mirror} {cfg.suite}-updates main",
               f"deb {cfg.security_mirror} {cfg.suite}-security main"]
    cmd = ["mmdebstrap", "--mode=root", "--variant=minbase", "--format=directory", "--quiet",
           f"--include={','.join(cfg.packages)}",
           "--dpkgopt=path-exclude=/usr/share/man/*", "--dpkgopt=path-exclude=/usr/share/locale/*",
           "--dpkgopt=path-include=/usr/share/locale/locale.alias",
           "--dpkgopt=path-exclude=/usr/share/doc/*", "--dpkgopt=path-include=/usr/share/doc/*/copyright",
           f"--customize-hook={HERE / 'customize.sh'} \"$1\"",
           cfg.suite, str(rootdir), *sources]
    log(f"mmdebstrap {cfg.suite} minbase + {len(cfg.packages)} packages -> {rootdir}")
    run(cmd, env=env)


def finish_rootfs(rootdir: Path) -> None:
    """After mmdebstrap's own clean-up (which empties /etc/machine-id and deletes D-Bus's copy): the
    read-only rootfs keeps /etc/machine-id empty (systemd mounts a transient one) and D-Bus's id a link."""
    (rootdir / "etc" / "machine-id").write_text("")
    link = rootdir / "var" / "lib" / "dbus" / "machine-id"
    link.unlink(missing_ok=True)
    link.symlink_to("/etc/machine-id")


def passwd_ids(rootdir: Path, user: str) -> tuple[int, int]:
    for line in (rootdir / "etc" / "passwd").read_text().splitlines():
        f = line.split(":")
        if f[0] == user:
            return int(f[2]), int(f[3])
    raise RuntimeError(f"{rootdir}/etc/passwd: no user {user}")


def data_tree(rootdir: Path, dest: Path) -> None:
    """The data partition's first contents: /data/endcap (bind-mounted at /var/lib/endcap) with the dev POS."""
    shutil.rmtree(dest, ignore_errors=True)
    (dest / "endcap").mkdir(parents=True)
    (dest / "rauc").mkdir()
    source = dest / "endcap" / "pos" / "source"
    source.mkdir(parents=True)
    db = sqlite3.connect(source / "pos.db")
    db.executescript((REPO / "services/endcap/sim/schema_sqlite.sql").read_text())
    db.commit()
    db.close()
    uid, gid = passwd_ids(rootdir, "endcap-pos")
    for p in (dest / "endcap" / "pos", source, source / "pos.db"):
        os.chown(p, uid, gid)
    os.chmod(dest / "endcap" / "pos", 0o750)


def mkfs_ext4(tree: Path, out: Path, size_mib: int, label: str, fs_uuid: str, hash_seed: str, epoch: int) -> None:
    out.unlink(missing_ok=True)
    env = dict(os.environ, E2FSPROGS_FAKE_TIME=str(epoch), SOURCE_DATE_EPOCH=str(epoch))
    # GRUB 2.06 cannot read ext4 with metadata_csum_seed; orphan_file is unknown to older e2fsck.
    run(["mkfs.ext4", "-q", "-F", "-L", label, "-U", fs_uuid, "-E", f"hash_seed={hash_seed},root_owner=0:0",
         "-O", "^metadata_csum_seed", "-d", str(tree), str(out), f"{size_mib}M"], env=env)


def esp_image(cfg: cfgmod.ImageConfig, work: Path, out: Path) -> None:
    template = (REPO / "ota/rauc/dev/grub.cfg").read_text()
    cfg_text = grub.render_cfg(template, esp_volume_id=cfg.ids["esp_volume_id"],
                               partuuid_a=cfg.ids["rootfs_a_partuuid"], partuuid_b=cfg.ids["rootfs_b_partuuid"])
    (work / "grub.cfg").write_text(cfg_text)
    efi = work / "BOOTX64.EFI"
    env = dict(os.environ, SOURCE_DATE_EPOCH=str(cfg.epoch))
    run(["grub-mkstandalone", "-O", "x86_64-efi", "-o", str(efi), "--locales=", "--fonts=", "--themes=",
         "--modules=part_gpt fat ext2 search_fs_uuid loadenv test echo linux normal configfile",
         f"boot/grub/grub.cfg={work / 'grub.cfg'}"], env=env)
    (work / "grubenv").write_bytes(grub.envblock(grub.INITIAL_ENV))
    for f in (efi, work / "grubenv"):
        os.utime(f, (cfg.epoch, cfg.epoch))
    out.unlink(missing_ok=True)
    # FAT16 at this size (FAT32 wants >= 65525 clusters; mtools finds no directory slots on a tiny one)
    run(["mkfs.vfat", "-C", "--invariant", "-n", "ESP", "-i", cfg.ids["esp_volume_id"], str(out),
         str(cfg.esp_mib * 1024)], env=env)
    mt = dict(env, MTOOLS_SKIP_CHECK="1")
    for d in ("::/EFI", "::/EFI/BOOT", "::/EFI/endcap"):
        run(["mmd", "-i", str(out), d], env=mt)
    run(["mcopy", "-m", "-i", str(out), str(efi), "::/EFI/BOOT/BOOTX64.EFI"], env=mt)
    run(["mcopy", "-m", "-i", str(out), str(work / "grubenv"), "::/EFI/endcap/grubenv"], env=mt)


def assemble(lay: layout.Layout, parts: dict[str, Path], disk: Path) -> None:
    disk.unlink(missing_ok=True)
    with open(disk, "wb") as f:
        f.truncate(lay.size_mib * layout.MIB)
    run(["sfdisk", "--quiet", "--no-reread", "--no-tell-kernel", str(disk)], input=lay.sfdisk_script())
    for name, img in parts.items():
        p = lay.by_name(name)
        if img.stat().st_size > p.size:
            raise RuntimeError(f"{img}: {img.stat().st_size} bytes do not fit partition {name} ({p.size})")
        run(["dd", f"if={img}", f"of={disk}", "bs=1M", f"seek={p.start_mib}", "conv=notrunc,sparse", "status=none"])


def prune(keep: int = 2) -> None:
    """Remove all but the ``keep`` newest built images (with their bundles) from the cache."""
    built = sorted((d for d in CACHE.iterdir() if (d / "image.json").is_file()), key=lambda d: d.stat().st_mtime,
                   reverse=True)
    for d in built[keep:]:
        log(f"pruning old image {d.name}")
        shutil.rmtree(d, ignore_errors=True)


def build(config_path: Path = cfgmod.DEFAULT_CONFIG, *, version: str = "1.0.0", force: bool = False) -> Image:
    """Build (or find in the cache) the dev image for ``version``. Returns the Image."""
    cfg = cfgmod.load(config_path)
    pki = ensure_pki()
    clip = dev_clip()
    key = input_hash(cfg, Path(pki.keyring), clip) + f"-{version}"
    out = CACHE / key
    disk, rootfs = out / "disk.img", out / "rootfs.ext4"
    if (out / "image.json").is_file() and not force:
        log(f"cached: {out}")
        return Image(out, disk, rootfs, json.loads((out / "image.json").read_text()))
    t0 = time.monotonic()
    work = CACHE / f"work-{key}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    timings: dict[str, float] = {}
    try:
        t = time.monotonic()
        wheels = work / "wheels"
        wheels.mkdir()
        for w in ensure_wheels(cfg).glob("*.whl"):
            os.link(w, wheels / w.name)
        dw = devicewheel.build(REPO, work / "devicewheel", REPO / ".venv/bin/pip")
        problems = devicewheel.check_wheel(dw)
        if problems:
            raise RuntimeError("device wheel: " + "; ".join(problems))
        shutil.copy2(dw, wheels / dw.name)
        timings["wheels_s"] = time.monotonic() - t

        t = time.monotonic()
        rootdir = work / "rootfs"
        env = dict(os.environ, SOURCE_DATE_EPOCH=str(cfg.epoch),
                   ENDCAP_OVERLAYS=f"{REPO / 'overlay'} {HERE / 'overlay-dev'}", ENDCAP_WHEELS=str(wheels),
                   ENDCAP_VENV=cfg.venv, ENDCAP_RAUC_CONF=str(REPO / "ota/rauc/dev/system.conf"),
                   ENDCAP_KEYRING=str(pki.keyring), ENDCAP_CLIP=str(clip), ENDCAP_DOC=str(REPO / "docs/image.md"),
                   ENDCAP_HOSTNAME=cfg.hostname, ENDCAP_UNITS=" ".join(enabled_units()), ENDCAP_VERSION=version)
        mmdebstrap(cfg, rootdir, env)
        finish_rootfs(rootdir)
        timings["mmdebstrap_s"] = time.monotonic() - t

        t = time.monotonic()
        used = int(run(["du", "-sb", str(rootdir)]).stdout.split()[0])
        fs_mib = layout.fs_size_mib(used, cfg.rootfs_mib)
        mkfs_ext4(rootdir, work / "rootfs.ext4", fs_mib, "rootfs", cfg.ids["rootfs_fs_uuid"], cfg.ids["hash_seed"],
                  cfg.epoch)
        data_tree(rootdir, work / "data")
        mkfs_ext4(work / "data", work / "data.ext4", cfg.data_mib, "data", cfg.ids["data_fs_uuid"],
                  cfg.ids["hash_seed"], cfg.epoch)
        esp_image(cfg, work, work / "esp.vfat")
        lay = layout.plan(esp_mib=cfg.esp_mib, rootfs_mib=cfg.rootfs_mib, data_mib=cfg.data_mib, ids=cfg.ids)
        assemble(lay, {"esp": work / "esp.vfat", "rootfs_a": work / "rootfs.ext4", "data": work / "data.ext4"},
                 work / "disk.img")
        timings["disk_s"] = time.monotonic() - t

        info = {"version": version, "hash": key, "compatible": cfg.compatible, "rootfs_used_bytes": used,
                "rootfs_fs_mib": fs_mib, "disk_mib": lay.size_mib,
                "disk_allocated_bytes": (work / "disk.img").stat().st_blocks * 512,
                "timings": {k: round(v, 1) for k, v in timings.items()},
                "build_s": round(time.monotonic() - t0, 1), "units": enabled_units()}
        out.mkdir(parents=True, exist_ok=True)
        os.replace(work / "disk.img", disk)
        os.replace(work / "rootfs.ext4", rootfs)
        (out / "image.json").write_text(json.dumps(info, indent=2) + "\n")
        log(f"built {out} in {info['build_s']} s: {json.dumps(info['timings'])}")
        prune()
        return Image(out, disk, rootfs, info)
    except BaseException:
        log(f"failed; the work directory is kept for a look: {work}")
        raise
    finally:
        if (out / "image.json").is_file():
            shutil.rmtree(work, ignore_errors=True)

"""The image build's config (image/debian/config.toml), loaded strictly: every bad value is named."""
from __future__ import annotations

import re
import tomllib
import uuid
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent  # image/debian
REPO = HERE.parent.parent
DEFAULT_CONFIG = HERE / "config.toml"


class ImageConfigError(ValueError):
    """A bad image config: the message names the key and the reason."""


@dataclass(frozen=True)
class ImageConfig:
    suite: str
    mirror: str
    security_mirror: str
    packages: tuple[str, ...]
    hostname: str
    compatible: str
    epoch: int
    esp_mib: int
    rootfs_mib: int
    data_mib: int
    ids: dict[str, str]
    venv: str
    requirements: Path


_UUID_KEYS = ("disk_guid", "esp_partuuid", "rootfs_a_partuuid", "rootfs_b_partuuid", "data_partuuid",
              "rootfs_fs_uuid", "data_fs_uuid", "hash_seed")


def _get(table: dict, section: str, key: str, typ: type):
    if section not in table or not isinstance(table[section], dict):
        raise ImageConfigError(f"[{section}]: section missing")
    if key not in table[section]:
        raise ImageConfigError(f"{section}.{key}: missing")
    value = table[section][key]
    if not isinstance(value, typ) or (typ is int and isinstance(value, bool)):
        raise ImageConfigError(f"{section}.{key}: must be {typ.__name__}, got {type(value).__name__}")
    return value


def parse(table: dict, base: Path = HERE) -> ImageConfig:
    packages = _get(table, "debian", "packages", list)
    for p in packages:
        if not isinstance(p, str) or not re.fullmatch(r"[a-z0-9][a-z0-9+.-]+", p):
            raise ImageConfigError(f"debian.packages: {p!r} is not a Debian package name")
    sizes = {k: _get(table, "image", k, int) for k in ("esp_mib", "rootfs_mib", "data_mib")}
    for k, v in sizes.items():
        if v < 16:
            raise ImageConfigError(f"image.{k}: {v} MiB is too small (at least 16)")
    ids = {}
    for k in _UUID_KEYS:
        v = _get(table, "ids", k, str)
        try:
            ids[k] = str(uuid.UUID(v))
        except ValueError:
            raise ImageConfigError(f"ids.{k}: {v!r} is not a UUID") from None
    vol = _get(table, "ids", "esp_volume_id", str)
    if not re.fullmatch(r"[0-9A-F]{8}", vol):
        raise ImageConfigError(f"ids.esp_volume_id: {vol!r} must be 8 upper-case hex digits")
    ids["esp_volume_id"] = vol
    compatible = _get(table, "image", "compatible", str)
    if not re.fullmatch(r"[a-z0-9][a-z0-9._-]*", compatible):
        raise ImageConfigError(f"image.compatible: {compatible!r} must be lower-case letters, digits, . _ -")
    epoch = _get(table, "image", "epoch", int)
    if epoch <= 0:
        raise ImageConfigError(f"image.epoch: {epoch} must be a positive Unix time")
    return ImageConfig(
        suite=_get(table, "debian", "suite", str), mirror=_get(table, "debian", "mirror", str),
        security_mirror=_get(table, "debian", "security_mirror", str), packages=tuple(packages),
        hostname=_get(table, "image", "hostname", str), compatible=compatible, epoch=epoch,
        ids=ids, venv=_get(table, "python", "venv", str),
        requirements=base / _get(table, "python", "requirements", str), **sizes)


def load(path: Path = DEFAULT_CONFIG) -> ImageConfig:
    try:
        table = tomllib.loads(Path(path).read_text())
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise ImageConfigError(f"{path}: {e}") from e
    return parse(table, Path(path).resolve().parent)


def requirements(path: Path) -> list[str]:
    """``name==version`` lines of a requirements file (comments and blanks dropped)."""
    out = []
    for line in Path(path).read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            if not re.fullmatch(r"[A-Za-z0-9._-]+==[A-Za-z0-9.+!-]+", line):
                raise ImageConfigError(f"{path}: {line!r} is not a pinned name==version")
            out.append(line)
    return out

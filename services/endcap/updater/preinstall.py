"""RAUC pre-install handler: refuse bundles that are not newer than the running firmware or below the floor.

RAUC 1.8 runs ``system.conf [handlers] pre-install=`` after verifying the signature and before writing
a slot; a non-zero exit aborts the install and RAUC reports the handler's output as the reason. The
bundle's manifest is read from ``$RAUC_BUNDLE_MOUNT_POINT/manifest.raucm`` (``[update] version`` and
the ``security-epoch=N`` token of ``[update] build``); the floor from the file the updater keeps in sync (``--floor-file``).
Fail closed: a missing or unreadable floor file refuses the install.

Usage: ``python3 -m endcap.updater.preinstall --floor-file /var/lib/endcap/updater/floor.json``
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Mapping, Optional

import msgspec

from ..core import bundlever
from ..core.errors import IntegrityError
from . import floor as fl

DEFAULT_FLOOR_FILE = "/var/lib/endcap/updater/floor.json"


def bundle_meta(mount_point: str) -> tuple[str, int]:
    """(version, security epoch) from a mounted bundle's manifest (``core.bundlever``). Raises: IntegrityError."""
    path = Path(mount_point) / "manifest.raucm"
    try:
        data = path.read_bytes()
    except OSError as e:
        raise IntegrityError(f"{path}: bundle manifest not readable: {e}", code="manifest") from e
    mf = bundlever.parse_manifest(data, str(path))
    return mf.version, mf.epoch


def read_floor(path: Path) -> fl.FloorFile:
    """Raises: IntegrityError (code ``floor``) when the file is missing or malformed: fail closed."""
    try:
        return msgspec.json.decode(path.read_bytes(), type=fl.FloorFile)
    except FileNotFoundError as e:
        raise IntegrityError(f"floor file {path} is missing: refusing to install without a floor", code="floor") from e
    except (OSError, msgspec.DecodeError) as e:
        raise IntegrityError(f"floor file {path} is unreadable: {e}", code="floor") from e


def decide(env: Mapping[str, str], floor_file: Path) -> None:
    """Raises: IntegrityError naming why the bundle must not be installed."""
    mount = env.get("RAUC_BUNDLE_MOUNT_POINT") or env.get("RAUC_UPDATE_SOURCE")
    if not mount:
        raise IntegrityError("RAUC_BUNDLE_MOUNT_POINT is not set: not run by RAUC as a handler", code="manifest")
    version, epoch = bundle_meta(mount)
    f = read_floor(floor_file)
    fl.check(version, epoch, running=f.version, floor=f.epoch)


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="endcap.updater.preinstall", description=__doc__.splitlines()[0])
    ap.add_argument("--floor-file", default=DEFAULT_FLOOR_FILE, type=Path)
    args = ap.parse_args(argv)
    try:
        decide(os.environ, args.floor_file)
    except IntegrityError as e:
        print(f"endcap pre-install refused: [{e.code}] {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

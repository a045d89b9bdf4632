import os
import subprocess
import sys

import msgspec
import pytest

from endcap.core.errors import IntegrityError
from endcap.updater import preinstall
from endcap.updater.floor import FloorFile


def _bundle(tmp_path, version="1.2.0", build="x security-epoch=3"):
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "manifest.raucm").write_text(f"[update]\ncompatible=c\nversion={version}\nbuild={build}\n")
    return {"RAUC_BUNDLE_MOUNT_POINT": str(tmp_path / "b")}


def test_accepts_newer(tmp_path):
    f = tmp_path / "floor.json"
    f.write_bytes(msgspec.json.encode(FloorFile("1.1.0", 3)))
    preinstall.decide(_bundle(tmp_path), f)


def test_missing_floor_file_fails_closed(tmp_path):
    with pytest.raises(IntegrityError, match="missing") as e:
        preinstall.decide(_bundle(tmp_path), tmp_path / "nope.json")
    assert e.value.code == "floor"


def test_module_exit_code_and_reason(tmp_path):
    f = tmp_path / "floor.json"
    f.write_bytes(msgspec.json.encode(FloorFile("1.2.0", 0)))
    env = dict(os.environ, **_bundle(tmp_path))
    r = subprocess.run([sys.executable, "-m", "endcap.updater.preinstall", "--floor-file", str(f)], env=env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1
    assert "[downgrade] bundle version 1.2.0 is the same as the running version 1.2.0" in r.stderr


def test_not_run_by_rauc(tmp_path):
    with pytest.raises(IntegrityError, match="RAUC_BUNDLE_MOUNT_POINT"):
        preinstall.decide({}, tmp_path / "floor.json")

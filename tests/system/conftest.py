"""System-test fixtures: the dev image (built once, cached by content hash, file-locked across xdist
workers) and a booted guest of it. Every test here is marked ``system``."""
from __future__ import annotations

import fcntl
import shutil
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "image" / "debian"))

from endcap_image.guest import Guest  # noqa: E402

BOOT_TIMEOUT_S = 420  # OVMF + GRUB + kernel + systemd under TCG on a busy 2-core host


def pytest_collection_modifyitems(items):
    for item in items:
        if Path(str(item.fspath)).is_relative_to(Path(__file__).parent):
            item.add_marker(pytest.mark.system)


@pytest.fixture(scope="session")
def dev_image():
    """The v1.0.0 dev image (built if its inputs changed; one build at a time across workers)."""
    from endcap_image import build

    build.CACHE.mkdir(parents=True, exist_ok=True)
    with open(build.CACHE / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return build.build(version="1.0.0")


@pytest.fixture
def guest(dev_image, tmp_path):
    """A fresh guest of the dev image (its own qcow2 overlay, OVMF vars and swtpm), not yet booted."""
    g = Guest(tmp_path / "guest", dev_image.disk)
    yield g
    g.stop()
    shutil.rmtree(tmp_path / "guest" / "tpm", ignore_errors=True)


@pytest.fixture(scope="module")
def booted(dev_image, tmp_path_factory):
    """One provisioned guest (TPM enrolled, model media attached), booted to a logged-in console and
    shared by a module's checks."""
    from endcap_image import provision

    work = tmp_path_factory.mktemp("booted")
    g = Guest(work / "guest", dev_image.disk)
    signer = provision.make_signer()
    provision.enrol_tpm(g.tpm_state, signer)
    g.media = (provision.model_media(work, signer),)
    g.boot()
    try:
        g.login(BOOT_TIMEOUT_S)
        yield g
    finally:
        g.stop()

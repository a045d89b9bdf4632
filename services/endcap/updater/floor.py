"""The anti-downgrade rule (pure): a bundle must be newer than the running firmware and not below the floor.

Versions follow SemVer 2.0.0 precedence (``core.bundlever``, the NOC's rule too); anything else is refused, because an ordering
we cannot compute is not an ordering we may trust. The security epoch floor lives in a TPM NV
counter (trust service); the updater mirrors it, with the running version, into a small JSON file that
RAUC's pre-install handler reads (``FloorFile``), since RAUC 1.8 itself has no floor.
"""
from __future__ import annotations

from ..core import bundlever
from ..core.errors import IntegrityError


FloorFile = bundlever.FloorFile  # the file's format lives in core: trust reads it too


def parse_version(text: str, what: str = "version") -> tuple:
    """An ordering key by the one version rule (``core.bundlever``, shared with the NOC):
    ``1.0.0-rc.1 < 1.0.0 < 1.0.1``. Raises: IntegrityError(code="bad_version") naming the input."""
    return bundlever.version_key(text, what)


def epoch_of_build(build: str) -> int:
    """The security epoch of a signed ``[update] build`` field (``core.bundlever``). Absent: 0.
    Raises: IntegrityError(code="manifest")."""
    return bundlever.epoch_of_build(build)


def check(version: str, epoch: int, *, running: str, floor: int) -> None:
    """Refuse a candidate that is not newer than ``running`` or whose epoch is below ``floor``.

    Raises: IntegrityError with code ``downgrade`` or ``epoch`` (or ``bad_version``).
    """
    cand, run = parse_version(version, "bundle version"), parse_version(running, "running version")
    if epoch < 0:
        raise IntegrityError(f"bundle security epoch {epoch} is negative", code="epoch")
    if cand <= run:
        word = "the same as" if cand == run else "older than"
        raise IntegrityError(f"bundle version {version} is {word} the running version {running}", code="downgrade")
    if epoch < floor:
        raise IntegrityError(f"bundle security epoch {epoch} is below this device's floor {floor}", code="epoch")

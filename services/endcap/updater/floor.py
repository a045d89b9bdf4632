"""The anti-downgrade rule (pure): a bundle must be newer than the running firmware and not below the floor.

Versions follow SemVer 2.0.0 precedence (the NOC's rule); anything else is refused, because an ordering
we cannot compute is not an ordering we may trust. The security epoch floor lives in a TPM NV
counter (trust service); the updater mirrors it, with the running version, into a small JSON file that
RAUC's pre-install handler reads (``FloorFile``), since RAUC 1.8 itself has no floor.
"""
from __future__ import annotations

import re

import msgspec

from ..core.errors import IntegrityError


class FloorFile(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """What the pre-install handler enforces: strictly newer than ``version``, epoch at least ``epoch``."""

    version: str
    epoch: int


_SEMVER = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
                     r"(?:-((?:0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*)(?:\.(?:0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*))*))?$")


def parse_version(text: str, what: str = "version") -> tuple:
    """An ordering key for a SemVer 2.0.0 version without build metadata (the NOC's rule, docs/noc.md):
    ``1.0.0-rc.1 < 1.0.0 < 1.0.1``. Raises: IntegrityError(code="bad_version") naming the input."""
    mt = _SEMVER.match(text)
    if mt is None:
        raise IntegrityError(f"{what} {text!r} is not MAJOR.MINOR.PATCH[-PRERELEASE]", code="bad_version")
    pre = tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in mt.group(4).split(".")) if mt.group(4) else ()
    return (int(mt.group(1)), int(mt.group(2)), int(mt.group(3)), 0 if pre else 1, pre)


def epoch_of_build(build: str) -> int:
    """The security epoch carried in a bundle's signed ``[update] build`` field as ``security-epoch=N``
    (RAUC 1.8 drops ``[meta.*]`` sections). Absent: 0. Raises: IntegrityError(code="manifest")."""
    for token in build.split():
        name, sep, value = token.partition("=")
        if sep and name == "security-epoch":
            if not value.isdigit():
                raise IntegrityError(f"bundle build field: security-epoch {value!r} is not a number", code="manifest")
            return int(value)
    return 0


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

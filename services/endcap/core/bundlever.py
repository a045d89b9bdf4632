"""The one rule for bundle versions, security epochs and RAUC manifests (pure: no I/O).

Used by the device updater (offer check, floor, pre-install handler) and by the NOC's ``endcap_ota``
(build, verify, rings) so both sides order versions and read epochs the same way; the NOC may import
this module, the device never imports the NOC.

- Version: Semantic Versioning 2.0.0 without build metadata, ``MAJOR.MINOR.PATCH[-PRERELEASE]``, no leading
  zeros, no ``+build`` (it takes no part in ordering, so two different bundles would compare equal).
  Ordering is SemVer precedence: ``1.0.0-rc.1 < 1.0.0 < 1.0.1``.
- Security epoch: the token ``security-epoch=N`` of the signed ``[update] build`` field (RAUC 1.8 drops
  ``[meta.*]`` sections). ``N`` is ASCII digits only; anything else is refused, never read as 0. Absent: 0.
- Manifest: ``manifest.raucm`` text (INI): ``[update] compatible, version, build`` and the ``[bundle]`` section.
- Floor file: ``FloorFile`` (JSON), what the updater committed: the running version and the epoch floor. The
  RAUC pre-install handler enforces it; trust caps a firmware-floor raise by its epoch.

Errors: ``IntegrityError`` with code ``bad_version`` or ``manifest``, naming the input.
"""
from __future__ import annotations

import configparser
import re
from typing import Optional

import msgspec

from .errors import IntegrityError

SEMVER = re.compile(r"(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)"
                    r"(?:-((?:0|[1-9][0-9]*|[0-9]*[A-Za-z-][0-9A-Za-z-]*)"
                    r"(?:\.(?:0|[1-9][0-9]*|[0-9]*[A-Za-z-][0-9A-Za-z-]*))*))?")
_DIGITS = re.compile(r"[0-9]+")
EPOCH_TOKEN = "security-epoch"


def version_parts(text: str, what: str = "version") -> tuple[int, int, int, tuple[int | str, ...]]:
    """(major, minor, patch, prerelease identifiers; numeric ones as int).

    Raises: IntegrityError(code="bad_version") naming ``what`` and the text."""
    mt = SEMVER.fullmatch(text) if isinstance(text, str) else None
    if mt is None:
        raise IntegrityError(f"{what} {text!r} is not MAJOR.MINOR.PATCH[-PRERELEASE] (SemVer 2.0, no +build)",
                             code="bad_version")
    pre = tuple(int(p) if _DIGITS.fullmatch(p) else p for p in mt.group(4).split(".")) if mt.group(4) else ()
    return int(mt.group(1)), int(mt.group(2)), int(mt.group(3)), pre


def version_key(text: str, what: str = "version") -> tuple:
    """An ordering key by SemVer precedence: a release sorts after its pre-releases, numeric identifiers
    before alphanumeric ones. Raises: IntegrityError(code="bad_version")."""
    major, minor, patch, pre = version_parts(text, what)
    return (major, minor, patch, 0 if pre else 1,
            tuple((0, p, "") if isinstance(p, int) else (1, 0, p) for p in pre))


def epoch_of_build(build: Optional[str]) -> int:
    """The security epoch from a ``build`` field (``20261128T132100Z security-epoch=4`` → 4); absent: 0.

    Raises: IntegrityError(code="manifest") when the token is there but its value is not ASCII digits,
    or when the token appears twice."""
    found: list[str] = []
    for token in (build or "").split():
        name, sep, value = token.partition("=")
        if sep and name == EPOCH_TOKEN:
            found.append(value)
    if not found:
        return 0
    if len(found) > 1:
        raise IntegrityError(f"bundle build field: {EPOCH_TOKEN} given {len(found)} times", code="manifest")
    if not _DIGITS.fullmatch(found[0]):
        raise IntegrityError(f"bundle build field: {EPOCH_TOKEN} {found[0]!r} is not a number", code="manifest")
    return int(found[0])


class FloorFile(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """What the pre-install handler enforces: strictly newer than ``version``, epoch at least ``epoch``."""

    version: str
    epoch: int


class Manifest(msgspec.Struct, frozen=True, kw_only=True):
    """What a bundle's ``manifest.raucm`` says (not yet checked against anything)."""

    compatible: str
    version: str
    build: str
    epoch: int
    bundle: dict[str, str] = {}  # the [bundle] section (format, verity-hash, verity-salt, verity-size)


def parse_manifest(data: bytes | str, where: str = "manifest") -> Manifest:
    """Parse manifest text. ``compatible`` and ``version`` are required (the version must follow the rule);
    ``build`` may be absent (epoch 0). Raises: IntegrityError(code="manifest" or "bad_version") naming ``where``."""
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError as e:
            raise IntegrityError(f"{where}: not UTF-8 text ({e})", code="manifest") from e
    cp = configparser.ConfigParser(interpolation=None)
    try:
        cp.read_string(data)
        compatible = cp.get("update", "compatible", fallback="")
        version = cp.get("update", "version", fallback="")
        build = cp.get("update", "build", fallback="")
        bundle = dict(cp.items("bundle")) if cp.has_section("bundle") else {}
    except configparser.Error as e:
        raise IntegrityError(f"{where}: does not parse: {e}", code="manifest") from e
    if not compatible:
        raise IntegrityError(f"{where}: has no [update] compatible", code="manifest")
    if not version:
        raise IntegrityError(f"{where}: has no [update] version", code="manifest")
    version_parts(version, f"{where}: version")
    try:
        epoch = epoch_of_build(build)
    except IntegrityError as e:
        raise IntegrityError(f"{where}: {e}", code="manifest") from e
    return Manifest(compatible=compatible, version=version, build=build, epoch=epoch, bundle=bundle)

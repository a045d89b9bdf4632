"""The one version rule for bundles and rings: Semantic Versioning 2.0.0 without build metadata.

``MAJOR.MINOR.PATCH[-PRERELEASE]``, no leading zeros, no ``+build`` (it would not take part in ordering and
would make two different bundles compare equal). Ordering is SemVer precedence: ``1.0.0-rc.1 < 1.0.0 < 1.0.1``.
Pure: no I/O. The device updater implements the same rule (see docs/noc.md).
"""
from __future__ import annotations

import re
from functools import total_ordering

from .errors import OtaError

_SEMVER = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
                     r"(?:-((?:0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*)(?:\.(?:0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*))*))?$")
_COMPATIBLE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


@total_ordering
class Version:
    """A parsed version; compare with ``<``/``==``; ``str()`` gives the canonical text back."""

    __slots__ = ("major", "minor", "patch", "pre", "text")

    def __init__(self, major: int, minor: int, patch: int, pre: tuple[int | str, ...], text: str) -> None:
        self.major, self.minor, self.patch, self.pre, self.text = major, minor, patch, pre, text

    def _key(self) -> tuple:
        # A release sorts after its pre-releases; numeric identifiers sort before alphanumeric ones.
        pre = tuple((0, p, "") if isinstance(p, int) else (1, 0, p) for p in self.pre)
        return (self.major, self.minor, self.patch, 0 if self.pre else 1, pre)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Version) and self._key() == other._key()

    def __lt__(self, other: "Version") -> bool:
        return self._key() < other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return f"Version({self.text!r})"


def parse_version(text: str) -> Version:
    """Parse ``text`` by the rule above. Raises: OtaError(code="version") naming the text."""
    m = _SEMVER.match(text or "")
    if not m:
        raise OtaError(f"version {text!r}: not MAJOR.MINOR.PATCH[-PRERELEASE] (SemVer 2.0, no +build)", code="version")
    pre = tuple(int(p) if p.isdigit() else p for p in m.group(4).split(".")) if m.group(4) else ()
    return Version(int(m.group(1)), int(m.group(2)), int(m.group(3)), pre, text)


def check_compatible(text: str) -> str:
    """A RAUC ``compatible`` also names TUF paths: letters, digits, ``.``, ``_``, ``-``; 1..64 chars.

    Raises: OtaError(code="compatible").
    """
    if not _COMPATIBLE.match(text or ""):
        raise OtaError(f"compatible {text!r}: use 1-64 of [A-Za-z0-9._-], starting with a letter or digit",
                       code="compatible")
    return text

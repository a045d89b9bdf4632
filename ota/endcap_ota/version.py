"""The one version rule for bundles and rings: Semantic Versioning 2.0.0 without build metadata.

``MAJOR.MINOR.PATCH[-PRERELEASE]``, no leading zeros, no ``+build`` (it would not take part in ordering and
would make two different bundles compare equal). Ordering is SemVer precedence: ``1.0.0-rc.1 < 1.0.0 < 1.0.1``.
Pure: no I/O. The rule itself lives in ``endcap.core.bundlever``, which the device updater uses too, so
the NOC and the gateways cannot disagree about an ordering (see docs/noc.md).
"""
from __future__ import annotations

import re
from functools import total_ordering

from endcap.core import bundlever
from endcap.core.errors import IntegrityError

from .errors import OtaError

_COMPATIBLE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


@total_ordering
class Version:
    """A parsed version; compare with ``<``/``==``; ``str()`` gives the canonical text back."""

    __slots__ = ("major", "minor", "patch", "pre", "text")

    def __init__(self, major: int, minor: int, patch: int, pre: tuple[int | str, ...], text: str) -> None:
        self.major, self.minor, self.patch, self.pre, self.text = major, minor, patch, pre, text

    def _key(self) -> tuple:
        return bundlever.version_key(self.text)

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
    try:
        major, minor, patch, pre = bundlever.version_parts(text or "")
    except IntegrityError:
        raise OtaError(f"version {text!r}: not MAJOR.MINOR.PATCH[-PRERELEASE] (SemVer 2.0, no +build)",
                       code="version") from None
    return Version(major, minor, patch, pre, text)


def check_compatible(text: str) -> str:
    """A RAUC ``compatible`` also names TUF paths: letters, digits, ``.``, ``_``, ``-``; 1..64 chars.

    Raises: OtaError(code="compatible").
    """
    if not _COMPATIBLE.match(text or ""):
        raise OtaError(f"compatible {text!r}: use 1-64 of [A-Za-z0-9._-], starting with a letter or digit",
                       code="compatible")
    return text

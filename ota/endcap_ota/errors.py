"""Errors of the NOC OTA tools; each has a short machine ``code`` and a message naming the input."""
from __future__ import annotations

from endcap.core.errors import EndcapError


class OtaError(EndcapError):
    """Base of every error ``endcap_ota`` raises on purpose."""

    code = "ota"


class PkiError(OtaError):
    """A PKI directory, certificate or key is missing or unusable."""

    code = "pki"


class BundleRefused(OtaError):
    """A bundle may not be built or installed.

    ``code`` is one of: ``unsigned``, ``foreign-ca``, ``key-usage``, ``tampered``, ``truncated``,
    ``compatible``, ``format``, ``version``, ``manifest``, ``expired``, ``input``.
    """

    code = "refused"


class RepoError(OtaError):
    """The TUF fleet repository refused an operation (missing keys, unknown version, ring order ...)."""

    code = "repo"

"""The one error hierarchy of the gateway.

Vendor exceptions are translated at adapter boundaries with ``raise ... from e``. Each error
carries a short machine ``code`` (what health and RPC replies report) and a human message.
"""
from __future__ import annotations


class EndcapError(Exception):
    """Base of every error the gateway raises on purpose."""

    code = "error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code

    @property
    def message(self) -> str:
        return str(self)


class ConfigError(EndcapError):
    """A config file or value is invalid. ``problems`` lists ``section.key: reason`` lines."""

    code = "config"

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.problems = problems or [message]


class BusError(EndcapError):
    """A bus send/receive failed or timed out, or a message broke the schema."""

    code = "bus"


class BusTimeout(BusError):
    code = "bus_timeout"


class SchemaError(BusError):
    """A message's envelope or body does not match the schema (incl. a major version mismatch)."""

    code = "schema"


class UpstreamError(EndcapError):
    """A system outside the gateway (POS, ERP, NOC) failed."""

    code = "upstream"


class UpstreamRetryable(UpstreamError):
    """Worth retrying later; ``retry_after`` (seconds) when the upstream said how long to wait."""

    code = "upstream_retryable"

    def __init__(self, message: str, *, retry_after: float | None = None, code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.retry_after = retry_after


class UpstreamFatal(UpstreamError):
    """Retrying will not help (bad credentials, missing table, incompatible API)."""

    code = "upstream_fatal"


class IntegrityError(EndcapError):
    """Hash, signature, TPM or anti-rollback failure: never retried, never downgraded to a warning."""

    code = "integrity"


class UpdateError(EndcapError):
    code = "update"


class RemoteError(EndcapError):
    """An RPC peer answered with an error reply; ``code`` is the peer's code."""

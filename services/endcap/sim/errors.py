"""The simulator's one error type: bad input to ``endcap sim`` or an unusable source database.

``SimError`` derives from ``EndcapError`` so callers that already handle the gateway's hierarchy handle
it too; its message always names the input (store id, fault name, source URL) and the reason.
"""
from __future__ import annotations

from endcap.core.errors import EndcapError


class SimError(EndcapError):
    """Bad simulator input (store, faults, source URL) or a source database that cannot be used."""

    code = "sim"

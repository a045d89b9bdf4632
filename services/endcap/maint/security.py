"""Pure request rules: cross-site request checks and the security headers every response carries."""
from __future__ import annotations

import hmac
from typing import Mapping, Optional

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")

BASE_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Strict-Transport-Security": "max-age=31536000",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}


def cross_site_reason(method: str, headers: Mapping[str, str], origin: str) -> Optional[str]:
    """Why a state-changing request looks cross-site (None: it does not).

    ``Origin`` must be present and equal ours; ``Sec-Fetch-Site``, when the browser sends it, must be
    ``same-origin`` or ``none`` (typed into the address bar). Because every page says
    ``Referrer-Policy: no-referrer``, browsers send ``Origin: null`` on our own form posts (Fetch spec,
    "serializing a request origin"); ``null`` is accepted only together with ``Sec-Fetch-Site:
    same-origin``, which page script cannot set (a forbidden header).
    """
    if method.upper() in SAFE_METHODS:
        return None
    got = headers.get("Origin")
    site = headers.get("Sec-Fetch-Site")
    if not got:
        return "no Origin header"
    if got == "null" and site == "same-origin":
        return None
    if got != origin:
        return f"Origin {got[:100]!r} is not {origin!r}"
    if site is not None and site not in ("same-origin", "none"):
        return f"Sec-Fetch-Site is {site[:40]!r}"
    return None


def token_ok(expected: str, got: Optional[str]) -> bool:
    return bool(got) and hmac.compare_digest(expected.encode(), str(got).encode())

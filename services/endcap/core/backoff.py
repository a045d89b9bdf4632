"""Pure retry timing: exponential backoff with full jitter, honouring an upstream's Retry-After.

No clock and no sleeping here; the caller owns both. ``rand`` is a float in [0, 1).
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Backoff:
    base_s: float = 0.5
    cap_s: float = 60.0

    def delay(self, attempt: int, rand: float, retry_after: float | None = None) -> float:
        """Seconds to wait before retry number ``attempt`` (1 = first retry).

        Full jitter (AWS architecture blog): uniform in [0, min(cap, base * 2**(attempt-1))].
        A server's Retry-After is a floor: we never come back sooner than it asked.
        """
        if attempt < 1:
            raise ValueError("attempt starts at 1")
        ceiling = min(self.cap_s, self.base_s * (2 ** min(attempt - 1, 30)))
        jittered = ceiling * rand
        if retry_after is not None:
            return max(min(retry_after, self.cap_s * 10), jittered)
        return jittered

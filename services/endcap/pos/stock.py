"""Pure stock rules: what the edge may claim about a SKU's stock. Fail closed: unknown is None.

A level is the last absolute count plus every movement after that count (movements at or before the
count's time are, by the ERP's definition, already in it). It is unknown when the SKU was never
counted, when its count is older than ``count_max_age`` in source time, or when the feed itself is
stale (no successful stock poll for ``feed_ttl`` wall seconds).
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class StockRules:
    feed_ttl_s: float
    count_max_age_us: int


def level(count_qty: float | None, count_us: int | None, moves_after: float, *, rules: StockRules,
          source_now_us: int, last_feed_ok: float | None, now: float) -> float | None:
    if count_qty is None or count_us is None:
        return None
    if last_feed_ok is None or now - last_feed_ok > rules.feed_ttl_s:
        return None
    if source_now_us - count_us > rules.count_max_age_us:
        return None
    return count_qty + moves_after

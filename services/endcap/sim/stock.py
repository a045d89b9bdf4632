"""The simulator's in-memory truth about stock: what each item really has on the shelf (pure, no I/O).

Invariants: every change goes through ``move`` (sales negative, returns/cancels/restocks positive),
so ``qty`` is always *initial count + every movement*; ``take_low`` / ``take_sold`` hand out sorted
lists (deterministic for a seed) and forget what they handed out.
"""
from __future__ import annotations

import random
from typing import Iterable


class StockLedger:
    def __init__(self, low_mark: float) -> None:
        self.low_mark = low_mark
        self.qty: dict[int, float] = {}
        self._low: set[int] = set()  # went below low_mark since the last restock round
        self._sold: set[int] = set()  # sold since the last recount

    def count_all(self, item_ids: Iterable[int], rng: random.Random, lo: int, hi: int) -> dict[int, float]:
        """Initial counts, ``lo``..``hi`` each; returns them (item → qty) in ``item_ids`` order."""
        self.qty = {item: rng.randint(lo, hi) for item in item_ids}
        return dict(self.qty)

    def __contains__(self, item_id: int) -> bool:
        return item_id in self.qty

    def move(self, item_id: int, delta: float) -> None:
        left = self.qty[item_id] = self.qty[item_id] + delta
        if delta < 0:
            self._sold.add(item_id)
            if left < self.low_mark:
                self._low.add(item_id)

    def take_low(self) -> list[int]:
        """Items still below the low mark, sorted; the next round starts afresh."""
        low = sorted(k for k in self._low if self.qty[k] < self.low_mark)
        self._low.clear()
        return low

    def take_sold(self) -> list[int]:
        sold = sorted(self._sold)
        self._sold.clear()
        return sold

    def snapshot(self) -> dict[str, float]:
        """SKU (item id as text) → quantity, as the edge and ``truth.source_stock`` key it."""
        return {str(k): float(v) for k, v in self.qty.items()}

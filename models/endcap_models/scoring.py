"""Vectorised scoring over the whole vocabulary, for evaluation and calibration (NOC side).

The formulas are the gateway's (``endcap.offers.model``, docs/offers.md); this module evaluates them
for every vocabulary item at once. ``tests/unit/test_offers_model.py`` checks that both give the same
numbers for the same package and history.

- ``personal(h, t)``: ``p_y = (num_y + k π_y) / (den + k)`` over the household's baskets before ``t``
  (at most ``history_limit``, weights ``0.5 ** (age / half_life)``); ``π`` when there is no history;
- ``history_cooc``: ``c_y = Σ_x (num_x / den) J(x, y)``;
- ``basket_cooc(A)``: ``b_y = Σ_{x ∈ A} J(x, y) / |A|`` for anchor items ``A`` known to be in the trip;
- ``rules(A)``: ``max_{x ∈ A} conf(x → y)``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from .data import Baskets
from .train import Fitted

DAY_S = 86400.0


def gather(m: sp.csr_matrix, rows: np.ndarray, weights: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Columns and (weighted) values of ``rows`` of CSR ``m``, concatenated."""
    lo, hi = m.indptr[rows], m.indptr[rows + 1]
    sizes = hi - lo
    total = int(sizes.sum())
    if total == 0:
        return np.empty(0, np.int64), np.empty(0, np.float64)
    offsets = np.repeat(lo - np.concatenate(([0], np.cumsum(sizes)[:-1])), sizes) + np.arange(total)
    vals = m.data[offsets].astype(np.float64)
    if weights is not None:
        vals = vals * np.repeat(weights, sizes)
    return m.indices[offsets], vals


def rows_sum(m: sp.csr_matrix, rows: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    cols, vals = gather(m, rows, weights)
    return np.bincount(cols, weights=vals, minlength=m.shape[1])


def rows_max(m: sp.csr_matrix, rows: np.ndarray) -> np.ndarray:
    cols, vals = gather(m, rows)
    out = np.zeros(m.shape[1])
    np.maximum.at(out, cols, vals)
    return out


@dataclass
class Digest:
    den: float
    items: np.ndarray  # vocabulary indices bought in the history
    num: np.ndarray  # their decayed counts
    baskets: int


class Histories:
    """Each household's baskets in time order; ``available`` limits which baskets may be history."""

    def __init__(self, data: Baskets, fitted: Fitted, available: np.ndarray) -> None:
        self.data, self.fitted = data, fitted
        idx = np.flatnonzero(available & (data.household >= 0))
        self.order = idx[np.argsort(data.household[idx], kind="stable")]  # baskets are time-ordered already
        hh = data.household[self.order]
        n_hh = len(data.households)
        self.lo = np.searchsorted(hh, np.arange(n_hh), "left")
        self.hi = np.searchsorted(hh, np.arange(n_hh), "right")

    def digest(self, household: int, t: float) -> Digest | None:
        """The household's history strictly before ``t``; None when it has none (or is anonymous)."""
        if household < 0:
            return None
        d, p = self.data, self.fitted.params
        hist = self.order[self.lo[household]:self.hi[household]]
        hist = hist[: np.searchsorted(d.ts[hist], t, "left")][-p.history_limit:]
        if len(hist) == 0:
            return None
        w = 0.5 ** ((t - d.ts[hist]) / (p.half_life_days * DAY_S))
        cnt = d.count[hist]
        lo = d.start[hist]
        offs = np.repeat(lo - np.concatenate(([0], np.cumsum(cnt)[:-1])), cnt) + np.arange(int(cnt.sum()))
        v = self.fitted.vocab_of[d.items[offs]]
        wl = np.repeat(w, cnt)
        keep = v >= 0
        items, inv = np.unique(v[keep], return_inverse=True)
        return Digest(float(w.sum()), items, np.bincount(inv, weights=wl[keep], minlength=len(items)), len(hist))


def personal(f: Fitted, dg: Digest | None) -> np.ndarray:
    k = f.params.shrink_k
    if dg is None:
        return f.prior.copy()
    out = k * f.prior / (dg.den + k)
    out[dg.items] += dg.num / (dg.den + k)
    return out


def history_cooc(f: Fitted, dg: Digest | None) -> np.ndarray:
    if dg is None or len(dg.items) == 0:
        return np.zeros(f.n_vocab)
    return rows_sum(f.jac, dg.items, dg.num / dg.den)


def history_raw(f: Fitted, dg: Digest | None) -> np.ndarray:
    """The gateway's raw score for a known shopper with no trip items (``history`` calibration context)."""
    return personal(f, dg) + f.params.lam_history * history_cooc(f, dg)


def basket_cooc(f: Fitted, anchors: np.ndarray) -> np.ndarray:
    if len(anchors) == 0:
        return np.zeros(f.n_vocab)
    return rows_sum(f.jac, anchors) / len(anchors)


def rules(f: Fitted, anchors: np.ndarray) -> np.ndarray:
    return rows_max(f.rules, anchors) if len(anchors) else np.zeros(f.n_vocab)

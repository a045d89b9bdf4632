"""Calibration: map raw scores to probabilities, and measure how well predictions match outcomes.

Responsibility: pure numpy over (score, outcome) pairs streamed basket by basket, never holding all
pairs (a test slice has ~10^8 basket × item pairs).

- ``Accumulator`` bins raw scores finely (log-spaced edges) and sums count, score and positives;
- ``fit_table`` merges adjacent bins until each holds ``min_count`` pairs, runs pool-adjacent-violators
  (isotonic regression) over them, and returns monotone points ``(x = mean raw, y = observed rate)``
  that the gateway interpolates linearly (``endcap.offers.model.Calibration``);
- ``Reliability`` bins *predicted probabilities* into ten equal-width deciles [0, .1) … [.9, 1] and
  reports, per decile, pairs, mean prediction, observed rate and its Wilson 95 % interval.
The tables are fitted on a calibration slice (weeks before the test weeks), never on the test slice.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

EDGES = np.concatenate(([0.0], np.logspace(-7, 1, 481)))


@dataclass
class Accumulator:
    edges: np.ndarray = field(default_factory=lambda: EDGES.copy())

    def __post_init__(self) -> None:
        n = len(self.edges) + 1
        self.count = np.zeros(n)
        self.total = np.zeros(n)
        self.pos = np.zeros(n)

    def add(self, raw: np.ndarray, positives: np.ndarray, weight: float = 1.0) -> None:
        """``raw`` for every candidate; ``positives`` = indices of those that were bought."""
        b = np.searchsorted(self.edges, raw, "right")
        n = len(self.count)
        self.count += weight * np.bincount(b, minlength=n)
        self.total += weight * np.bincount(b, weights=raw, minlength=n)
        if len(positives):
            self.pos += weight * np.bincount(b[positives], minlength=n)


def _pav(x: list[float], y: list[float], w: list[float]) -> tuple[list[float], list[float], list[float]]:
    """Pool adjacent violators: non-decreasing y, weighted; x pooled with the same weights."""
    bx: list[float] = []
    by: list[float] = []
    bw: list[float] = []
    for xi, yi, wi in zip(x, y, w):
        bx.append(xi)
        by.append(yi)
        bw.append(wi)
        while len(by) > 1 and by[-2] > by[-1]:
            w2 = bw[-2] + bw[-1]
            bx[-2] = (bx[-2] * bw[-2] + bx[-1] * bw[-1]) / w2
            by[-2] = (by[-2] * bw[-2] + by[-1] * bw[-1]) / w2
            bw[-2] = w2
            del bx[-1], by[-1], bw[-1]
    return bx, by, bw


def fit_table(acc: Accumulator, min_count: float = 100.0) -> dict:
    """Monotone calibration points from accumulated bins.

    Raises:
        ValueError: fewer than two blocks of ``min_count`` pairs (too little data to calibrate).
    """
    xs, ys, ws = [], [], []
    c = t = p = 0.0
    for cnt, tot, pos in zip(acc.count, acc.total, acc.pos):
        c, t, p = c + cnt, t + tot, p + pos
        if c >= min_count:
            xs.append(t / c)
            ys.append(p / c)
            ws.append(c)
            c = t = p = 0.0
    if c > 0 and xs:  # the remainder joins the last block
        t_all, c_all = xs[-1] * ws[-1] + t, ws[-1] + c
        ys[-1] = (ys[-1] * ws[-1] + p) / c_all
        xs[-1], ws[-1] = t_all / c_all, c_all
    if not xs:
        raise ValueError(f"too little data to calibrate: fewer than {min_count:.0f} pairs")
    bx, by, bw = _pav(xs, ys, ws)
    # equal x after pooling cannot happen (bins are ordered), but equal y steps are merged for a compact table
    px, py, pw = [bx[0]], [by[0]], [bw[0]]
    for xi, yi, wi in zip(bx[1:], by[1:], bw[1:]):
        if yi == py[-1] or xi <= px[-1]:
            w2 = pw[-1] + wi
            px[-1] = (px[-1] * pw[-1] + xi * wi) / w2
            pw[-1] = w2
        else:
            px.append(xi)
            py.append(yi)
            pw.append(wi)
    if len(px) < 2:
        raise ValueError(f"too little data to calibrate: {len(px)} block(s) of {min_count:.0f} pairs")
    return {"x": [float(v) for v in px], "y": [float(min(1.0, max(0.0, v))) for v in py], "n": [float(v) for v in pw]}


def apply_table(table: dict, raw: np.ndarray) -> np.ndarray:
    return np.interp(raw, table["x"], table["y"])


def wilson(pos: float, n: float, z: float = 1.96) -> tuple[float, float]:
    if n <= 0:
        return (0.0, 1.0)
    p = pos / n
    den = 1 + z * z / n
    mid = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return (max(0.0, mid - half), min(1.0, mid + half))


@dataclass
class Reliability:
    bins: int = 10

    def __post_init__(self) -> None:
        self.count = np.zeros(self.bins)
        self.pred = np.zeros(self.bins)
        self.pos = np.zeros(self.bins)

    def add(self, pred: np.ndarray, positives: np.ndarray) -> None:
        b = np.minimum((pred * self.bins).astype(np.int64), self.bins - 1)
        self.count += np.bincount(b, minlength=self.bins)
        self.pred += np.bincount(b, weights=pred, minlength=self.bins)
        if len(positives):
            self.pos += np.bincount(b[positives], minlength=self.bins)

    def rows(self) -> list[dict]:
        out = []
        for i in range(self.bins):
            n = float(self.count[i])
            lo, hi = wilson(self.pos[i], n)
            out.append({"decile": f"{i / self.bins:.1f}-{(i + 1) / self.bins:.1f}", "pairs": int(n),
                        "positives": int(self.pos[i]),
                        "predicted": float(self.pred[i] / n) if n else None,
                        "observed": float(self.pos[i] / n) if n else None,
                        "ci95": [lo, hi] if n else None})
        return out


def max_gap(rows: list[dict], min_pairs: int = 100) -> float:
    """Largest |predicted - observed| over deciles holding at least ``min_pairs`` pairs."""
    gaps = [abs(r["predicted"] - r["observed"]) for r in rows if r["pairs"] >= min_pairs]
    return max(gaps) if gaps else float("nan")

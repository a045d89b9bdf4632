"""The basket model on the gateway: load a verified package, build shopper profiles, score candidates.

Relevance (docs/offers.md): the calibrated probability that this shopper buys SKU ``y`` on this trip.
With the package's prior ``π`` (share of training baskets holding ``y``), Jaccard neighbours ``J``
(top-N per item) and params (half-life ``h`` days, shrinkage ``k``, blend weight ``λ``):

- history (known shopper, up to ``history_limit`` baskets before ``now``): weights
  ``w_j = 0.5 ** (age_j / h)``, ``den = Σ w_j``, ``num_y = Σ w_j [y ∈ basket_j]``;
- personal rate shrunk toward the prior: ``p_y = (num_y + k π_y) / (den + k)``;
- co-occurrence with what the shopper buys: ``c_y = Σ_x (num_x / den) J(x, y)``;
- raw score ``p_y + λ c_y``, mapped through the package's ``history`` calibration table;
- no history (anonymous, or history not yet fetched): raw ``π_y`` through the ``anonymous`` table.
Tables are monotone piecewise-linear ``(x, y)`` points fitted on held-out weeks (endcap_models).

Invariants: a package is used only after ``verify_package`` (kind ``offers-basket``, params ``format`` 1)
and the structural checks here pass
(``IntegrityError`` otherwise, and the caller keeps its previous model); arrays are never unpickled;
a ``Profile`` and an ``OfferModel`` are immutable once built, so a reload swaps one reference.
"""
from __future__ import annotations

import io
import math
from bisect import bisect_right
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Optional

import numpy as np

from ..core.errors import IntegrityError
from ..trust.manifest import VerifiedPackage, verify_package

KIND = "offers-basket"  # manifest ``kind``; ``compatible`` is the device platform, checked by the trust store
FORMAT = 1  # params["format"]: the array layout this code reads
SCORERS = ("blend", "popularity")
CONTEXTS = ("history", "anonymous")
FILES = {"skus.npy": "U", "prior.npy": "f", "jac_indptr.npy": "i", "jac_indices.npy": "i", "jac_data.npy": "f"}
PARAMS = ("half_life_days", "shrink_k", "lam_history", "history_limit")
DAY_S = 86400.0


@dataclass(frozen=True)
class Calibration:
    xs: tuple[float, ...]
    ys: tuple[float, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "xa", np.asarray(self.xs, np.float64))
        object.__setattr__(self, "ya", np.asarray(self.ys, np.float64))

    def __call__(self, raw: float) -> float:
        xs, ys = self.xs, self.ys
        if raw <= xs[0]:
            return ys[0]
        if raw >= xs[-1]:
            return ys[-1]
        i = bisect_right(xs, raw)
        x0, x1 = xs[i - 1], xs[i]
        return ys[i - 1] + (ys[i] - ys[i - 1]) * (raw - x0) / (x1 - x0)


@dataclass(frozen=True)
class Profile:
    """A known shopper's history, digested once per fetch (decisions only look numbers up).

    ``num_*``: decayed counts per item index (sorted indices); ``cooc_*``: the co-occurrence term.
    """

    den: float
    num_idx: np.ndarray
    num_val: np.ndarray
    cooc_idx: np.ndarray
    cooc_val: np.ndarray
    baskets: int

    @classmethod
    def of(cls, den: float, num: dict[int, float], cooc: dict[int, float], baskets: int) -> "Profile":
        def arrays(d: dict[int, float]) -> tuple[np.ndarray, np.ndarray]:
            keys = np.array(sorted(d), np.int64)
            return keys, np.array([d[k] for k in keys.tolist()], np.float64)

        return cls(den, *arrays(num), *arrays(cooc), baskets)


def _lookup(keys: np.ndarray, vals: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """vals at idx where keys holds it, else 0 (keys sorted)."""
    if len(keys) == 0:
        return np.zeros(len(idx))
    pos = np.minimum(np.searchsorted(keys, idx), len(keys) - 1)
    return np.where(keys[pos] == idx, vals[pos], 0.0)


@dataclass(frozen=True)
class OfferModel:
    name: str
    scorer: str  # blend | popularity
    version: str
    digest: str
    skus: tuple[str, ...]
    index: dict[str, int]
    prior: np.ndarray
    jac_indptr: np.ndarray
    jac_indices: np.ndarray
    jac_data: np.ndarray
    calibration: dict[str, Calibration]
    half_life_days: float
    shrink_k: float
    lam_history: float
    history_limit: int
    metrics: dict = field(default_factory=dict)

    def popularity(self) -> "OfferModel":
        """The same package scored by popularity alone (the benchmark's and evaluation's baseline)."""
        from dataclasses import replace

        return replace(self, scorer="popularity")

    def profile(self, baskets: Iterable[tuple[float, Iterable[str]]], now: float) -> Optional[Profile]:
        """Digest ``(ts, skus)`` baskets (any order) into a Profile; None when nothing usable is in them."""
        if self.scorer == "popularity":
            return None
        recent = sorted(((ts, skus) for ts, skus in baskets if ts <= now), key=lambda b: -b[0])[: self.history_limit]
        if not recent:
            return None
        den, num = 0.0, {}
        for ts, skus in recent:
            w = 0.5 ** ((now - ts) / (self.half_life_days * DAY_S))
            den += w
            for i in {self.index[s] for s in skus if s in self.index}:
                num[i] = num.get(i, 0.0) + w
        if den <= 0:
            return None
        cooc: dict[int, float] = {}
        if num and self.lam_history > 0:  # numpy over the anchors' neighbour lists
            anchors = np.fromiter(num.keys(), np.int64, len(num))
            weights = np.fromiter(num.values(), np.float64, len(num)) / den
            lo, hi = self.jac_indptr[anchors], self.jac_indptr[anchors + 1]
            sizes = hi - lo
            idx = np.concatenate([self.jac_indices[a:b] for a, b in zip(lo, hi)]) if sizes.sum() else np.empty(0, np.int64)
            if len(idx):
                val = np.concatenate([self.jac_data[a:b] for a, b in zip(lo, hi)]) * np.repeat(weights, sizes)
                uniq, inv = np.unique(idx, return_inverse=True)
                cooc = dict(zip(uniq.tolist(), np.bincount(inv, weights=val).tolist()))
        return Profile.of(den, num, cooc, len(recent))

    def indices(self, skus: Iterable[str]) -> np.ndarray:
        """Model index per SKU, -1 for a SKU the model does not know."""
        get = self.index.get
        return np.array([get(s, -1) for s in skus], np.int64)

    def relevance_idx(self, idx: np.ndarray, profile: Optional[Profile]) -> np.ndarray:
        """Calibrated relevance for model indices (NaN where ``idx`` is -1): a few numpy operations."""
        known = idx >= 0
        safe = np.where(known, idx, 0)
        prior = self.prior[safe]
        if profile is None or self.scorer == "popularity":
            cal = self.calibration["anonymous"]
            rel = np.interp(prior, cal.xa, cal.ya)
        else:
            k, cal = self.shrink_k, self.calibration["history"]
            raw = (_lookup(profile.num_idx, profile.num_val, safe) + k * prior) / (profile.den + k)
            if self.lam_history > 0:
                raw += self.lam_history * _lookup(profile.cooc_idx, profile.cooc_val, safe)
            rel = np.interp(raw, cal.xa, cal.ya)
        return np.where(known, rel, np.nan)

    def relevance(self, skus: Iterable[str], profile: Optional[Profile]) -> list[Optional[float]]:
        """Calibrated relevance per SKU, None for a SKU the model does not know (never offered)."""
        rel = self.relevance_idx(self.indices(skus), profile)
        return [None if v != v else float(v) for v in rel.tolist()]


def _array(blob: bytes, name: str, kind: str) -> np.ndarray:
    try:
        arr = np.load(io.BytesIO(blob), allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        raise IntegrityError(f"{name}: not a numpy array file: {e}") from e
    if not isinstance(arr, np.ndarray) or arr.ndim != 1 or arr.dtype.kind not in (kind, "u" if kind == "i" else kind):
        raise IntegrityError(f"{name}: expected a 1-D array of kind {kind!r}, got {getattr(arr, 'dtype', type(arr))}")
    return arr


def _calibration(raw: object, ctx: str) -> Calibration:
    if not isinstance(raw, dict) or not isinstance(raw.get("x"), list) or not isinstance(raw.get("y"), list):
        raise IntegrityError(f"calibration.{ctx}: expected {{x: [...], y: [...]}}")
    xs, ys = raw["x"], raw["y"]
    ok = (len(xs) == len(ys) >= 2 and all(isinstance(v, (int, float)) and math.isfinite(v) for v in xs + ys)
          and all(a < b for a, b in zip(xs, xs[1:])) and all(a <= b for a, b in zip(ys, ys[1:]))
          and 0.0 <= ys[0] and ys[-1] <= 1.0)
    if not ok:
        raise IntegrityError(f"calibration.{ctx}: points must be finite, x strictly and y weakly increasing, y in [0, 1]")
    return Calibration(tuple(float(v) for v in xs), tuple(float(v) for v in ys))


def from_package(pkg: VerifiedPackage) -> OfferModel:
    """Structural checks on a verified package; a package that does not fit this code is refused.

    Raises:
        IntegrityError: wrong kind, missing/extra arrays, inconsistent shapes, values out of range.
    """
    man, where = pkg.manifest, f"model package {pkg.directory}"
    try:
        if man.kind != KIND:
            raise IntegrityError(f"kind {man.kind!r} is not {KIND!r} (not an offers model)")
        if man.params.get("format") != FORMAT:
            raise IntegrityError(f"params.format {man.params.get('format')!r} is not {FORMAT} (made for other gateway code)")
        scorer = man.params.get("scorer", "blend")
        if scorer not in SCORERS:
            raise IntegrityError(f"params.scorer {scorer!r} is not one of {SCORERS}")
        if set(pkg.blobs) != set(FILES):
            raise IntegrityError(f"files {sorted(pkg.blobs)} are not {sorted(FILES)}")
        a = {n: _array(pkg.blobs[n], n, k) for n, k in FILES.items()}
        skus, prior = a["skus.npy"], a["prior.npy"].astype(np.float64)
        indptr, indices, data = a["jac_indptr.npy"].astype(np.int64), a["jac_indices.npy"].astype(np.int64), a["jac_data.npy"]
        n = len(skus)
        if n == 0 or len(prior) != n or len(set(skus.tolist())) != n:
            raise IntegrityError(f"{n} SKUs (distinct?) but {len(prior)} priors")
        if not (np.isfinite(prior).all() and (prior >= 0).all() and (prior <= 1).all()):
            raise IntegrityError("prior.npy: values outside [0, 1]")
        if len(indptr) != n + 1 or indptr[0] != 0 or (np.diff(indptr) < 0).any() or indptr[-1] != len(indices) or len(indices) != len(data):
            raise IntegrityError("jac_*.npy: not a consistent CSR matrix for these SKUs")
        if len(indices) and (indices.min() < 0 or indices.max() >= n):
            raise IntegrityError("jac_indices.npy: neighbour index out of range")
        if not (np.isfinite(data).all() and (data >= 0).all() and (data <= 1).all()):
            raise IntegrityError("jac_data.npy: Jaccard values outside [0, 1]")
        cal = {ctx: _calibration(man.calibration.get(ctx), ctx) for ctx in CONTEXTS}
        p = man.params
        if any(not isinstance(p.get(k), (int, float)) for k in PARAMS):
            raise IntegrityError(f"params must hold numbers {PARAMS}")
        if not (p["half_life_days"] > 0 and p["shrink_k"] > 0 and p["lam_history"] >= 0 and int(p["history_limit"]) >= 1):
            raise IntegrityError("params out of range")
    except IntegrityError as e:
        raise IntegrityError(f"{where}: {e}") from e
    sku_list = tuple(skus.tolist())
    return OfferModel(man.name, scorer, man.version, pkg.digest, sku_list, {s: i for i, s in enumerate(sku_list)},
                      prior, indptr, indices, data.astype(np.float64), cal, float(p["half_life_days"]),
                      float(p["shrink_k"]), float(p["lam_history"]), int(p["history_limit"]), dict(man.metrics))


def load_model(directory: str | Path, compatible: Optional[str] = None) -> OfferModel:
    """Verify and load the package in ``directory`` (``compatible``: the device platform, when given).

    Raises:
        IntegrityError: the package fails verification or does not fit this code.
    """
    return from_package(verify_package(directory, compatible=compatible))

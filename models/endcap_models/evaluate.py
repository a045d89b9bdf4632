"""The evaluation protocol (docs/offers.md, "Evaluation"): temporal split, one held-out item per basket.

Split (weeks of the data): train 1..``train_last_week``; calibration slice = its last
``calib_weeks`` weeks, scored by a model fitted on the weeks before them; test
``test_first_week``..``test_last_week``.

Ranking (HR@5, NDCG@5): every test basket with >= 2 distinct items and >= 1 vocabulary item; the
held-out item is drawn uniformly from its vocabulary items (``numpy`` generator seeded ``seed``); the
query context is the rest of the basket plus the household's history (``live``: every basket before
this one, as the gateway fetches it; ``frozen``: training weeks only); candidates are the vocabulary
minus the context's items; ties go to the more popular item. With ``vocab_only=False`` the held-out
item is drawn from all the basket's items and one outside the vocabulary is a miss.

Zone choice (HR@1): the same held-out item; candidates are the vocabulary items of its product
category (a shelf zone); the context is the history only (what the gateway knows); a hit is a top
candidate the basket holds.

Calibration: the ``history`` context (known shopper, trip items unknown) and the ``anonymous``
context, every (basket, vocabulary item) pair, outcome = the basket holds the item.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, replace
from typing import Callable, Iterable, Optional

import numpy as np

from . import calibrate, scoring
from .data import Baskets
from .train import Fitted, Params, fit

MODELS = ("popularity", "rules", "cooc", "personal", "blend")


@dataclass(frozen=True)
class Protocol:
    train_last_week: int = 44
    calib_weeks: int = 4
    test_first_week: int = 45
    test_last_week: int = 53
    seed: int = 0
    history: str = "live"  # live | frozen
    max_queries: Optional[int] = None  # subsample (tests); None = every eligible basket

    def masks(self, data: Baskets) -> dict[str, np.ndarray]:
        w = data.week
        cut = self.train_last_week - self.calib_weeks
        return {"train": w <= self.train_last_week, "fit_for_calib": w <= cut,
                "calib": (w > cut) & (w <= self.train_last_week),
                "test": (w >= self.test_first_week) & (w <= self.test_last_week)}


@dataclass(frozen=True)
class Query:
    basket: int
    held: int  # vocabulary index, -1 outside the vocabulary
    context: np.ndarray  # vocabulary indices of the other items


def make_queries(data: Baskets, f: Fitted, mask: np.ndarray, seed: int, *, vocab_only: bool = True,
                 limit: Optional[int] = None) -> list[Query]:
    rng = np.random.default_rng(seed)
    out = []
    for b in np.flatnonzero(mask & (data.count >= 2)):
        v = f.vocab_of[data.basket_items(b)]
        pool = v[v >= 0] if vocab_only else v
        if len(pool) == 0 or not (v >= 0).any():
            continue
        pick = int(rng.integers(len(pool)))
        held = int(pool[pick])
        if vocab_only:
            ctx = np.delete(pool, pick)
        else:
            rest = np.delete(v, pick)
            ctx = rest[rest >= 0]
        out.append(Query(int(b), held, ctx))
    if limit is not None and len(out) > limit:
        keep = np.sort(rng.choice(len(out), limit, replace=False))
        out = [out[i] for i in keep]
    return out


def _histories(data: Baskets, f: Fitted, proto: Protocol) -> scoring.Histories:
    avail = np.ones(data.n_baskets, bool) if proto.history == "live" else data.week <= proto.train_last_week
    return scoring.Histories(data, f, avail)


def _top5(score: np.ndarray, prior: np.ndarray, exclude: np.ndarray) -> np.ndarray:
    s = score + 1e-12 * prior
    s[exclude] = -np.inf
    top = np.argpartition(-s, 5)[:5]
    return top[np.argsort(-s[top], kind="stable")]


def rank(data: Baskets, f: Fitted, queries: list[Query], hist: scoring.Histories,
         models: Iterable[str] = MODELS) -> dict[str, dict]:
    """HR@5 and NDCG@5 of each model over the same queries."""
    models = tuple(models)
    hits = {m: 0 for m in models}
    ndcg = {m: 0.0 for m in models}
    p = f.params
    for q in queries:
        dg = hist.digest(int(data.household[q.basket]), float(data.ts[q.basket])) if {"personal", "blend"} & set(models) else None
        per = scoring.personal(f, dg) if {"personal", "blend"} & set(models) else None
        for m in models:
            if m == "popularity":
                s = f.prior
            elif m == "rules":
                s = scoring.rules(f, q.context)
            elif m == "cooc":
                s = scoring.basket_cooc(f, q.context)
            elif m == "personal":
                s = per
            else:
                s = per + p.lam_history * scoring.history_cooc(f, dg) + p.lam_basket * scoring.basket_cooc(f, q.context)
            top = _top5(s, f.prior, q.context)
            where = np.flatnonzero(top == q.held)
            if len(where):
                hits[m] += 1
                ndcg[m] += 1.0 / np.log2(where[0] + 2)
    n = max(1, len(queries))
    return {m: {"hr5": hits[m] / n, "hr5_ci95": list(calibrate.wilson(hits[m], n)), "ndcg5": float(ndcg[m] / n),
                "queries": len(queries)} for m in models}


def zone_choice(data: Baskets, f: Fitted, queries: list[Query], hist: scoring.Histories,
                category_of: dict[str, str]) -> dict[str, dict]:
    """HR@1 of the in-zone choice: popularity vs the gateway's history score (trip items unknown)."""
    cats = np.array([category_of.get(s, "") for s in f.skus])
    members: dict[str, np.ndarray] = {}
    hits = {"popularity": 0, "history": 0}
    n = 0
    for q in queries:
        if q.held < 0 or not cats[q.held]:
            continue
        c = cats[q.held]
        cand = members.get(c)
        if cand is None:
            cand = members[c] = np.flatnonzero(cats == c)
        if len(cand) < 2:
            continue
        n += 1
        bought = set(f.vocab_of[data.basket_items(q.basket)].tolist())
        dg = hist.digest(int(data.household[q.basket]), float(data.ts[q.basket]))
        for name, s in (("popularity", f.prior[cand]), ("history", scoring.history_raw(f, dg)[cand])):
            best = cand[int(np.argmax(s + 1e-12 * f.prior[cand]))]
            hits[name] += best in bought
    return {k: {"hr1": v / max(1, n), "queries": n} for k, v in hits.items()}


def _each_basket(data: Baskets, f: Fitted, hist: scoring.Histories, mask: np.ndarray,
                 fn: Callable[[Optional[scoring.Digest], np.ndarray], None]) -> None:
    for b in np.flatnonzero(mask):
        v = f.vocab_of[data.basket_items(b)]
        fn(hist.digest(int(data.household[b]), float(data.ts[b])), v[v >= 0])


def fit_calibration(data: Baskets, f: Fitted, hist: scoring.Histories, mask: np.ndarray) -> dict:
    """Calibration tables for the gateway's two contexts, fitted on the baskets of ``mask``."""
    acc_h, acc_a = calibrate.Accumulator(), calibrate.Accumulator()

    def add(dg, pos):
        acc_a.add(f.prior, pos)
        if dg is not None:
            acc_h.add(scoring.history_raw(f, dg), pos)

    _each_basket(data, f, hist, mask, add)
    return {"history": calibrate.fit_table(acc_h), "anonymous": calibrate.fit_table(acc_a)}


def reliability(data: Baskets, f: Fitted, hist: scoring.Histories, mask: np.ndarray, tables: dict) -> dict:
    """Reliability tables on the baskets of ``mask`` (the test slice): calibrated and raw."""
    rel = {"history": calibrate.Reliability(), "history_raw": calibrate.Reliability(), "anonymous": calibrate.Reliability()}
    anon_pred = calibrate.apply_table(tables["anonymous"], f.prior)

    def add(dg, pos):
        rel["anonymous"].add(anon_pred, pos)
        if dg is not None:
            raw = scoring.history_raw(f, dg)
            rel["history"].add(calibrate.apply_table(tables["history"], raw), pos)
            rel["history_raw"].add(np.clip(raw, 0.0, 1.0), pos)

    _each_basket(data, f, hist, mask, add)
    out = {k: r.rows() for k, r in rel.items()}
    out["max_gap"] = {k: calibrate.max_gap(out[k]) for k in rel}
    return out


def train_calibrated(data: Baskets, params: Params, proto: Protocol) -> tuple[Fitted, dict, dict]:
    """The shipped model: arrays fitted on every training week, tables fitted on the calibration slice
    by a model fitted on the weeks before it. Returns (fitted, tables, timings)."""
    masks = proto.masks(data)
    t0 = time.perf_counter()
    early = fit(data, masks["fit_for_calib"], params)
    tables = fit_calibration(data, early, _histories(data, early, proto), masks["calib"])
    t1 = time.perf_counter()
    final = fit(data, masks["train"], params)
    t2 = time.perf_counter()
    return final, tables, {"calibration_s": t1 - t0, "fit_s": t2 - t1}


GRID = {"half_life_days": (30.0, 60.0, 120.0), "lam_basket": (1.0, 3.0, 10.0), "lam_history": (0.0, 3.0, 10.0, 30.0)}


def tune(data: Baskets, params: Params, proto: Protocol, limit: Optional[int] = 8000,
         category_of: Optional[dict[str, str]] = None) -> tuple[Params, list[dict]]:
    """Choose half-life and λ_basket by blend HR@5, then λ_history by zone HR@1, on the calibration
    slice only (model fitted on the weeks before it). Never looks at the test weeks."""
    masks = proto.masks(data)
    f = fit(data, masks["fit_for_calib"], params)
    qs = make_queries(data, f, masks["calib"], proto.seed + 1, limit=limit)
    trials, best = [], (-1.0, params)
    for hl in GRID["half_life_days"]:
        for lb in GRID["lam_basket"]:
            p = replace(params, half_life_days=hl, lam_basket=lb, lam_history=0.0)
            g = replace(f, params=p)
            hr = rank(data, g, qs, _histories(data, g, proto), ("blend",))["blend"]["hr5"]
            trials.append({"half_life_days": hl, "lam_basket": lb, "valid_hr5": hr})
            best = max(best, (hr, p), key=lambda t: t[0])
    chosen = best[1]
    if category_of:
        zbest = (-1.0, chosen.lam_history)
        for lh in GRID["lam_history"]:
            g = replace(f, params=replace(chosen, lam_history=lh))
            hr1 = zone_choice(data, g, qs, _histories(data, g, proto), category_of)["history"]["hr1"]
            trials.append({"lam_history": lh, "valid_zone_hr1": hr1})
            zbest = max(zbest, (hr1, lh), key=lambda t: t[0])
        chosen = replace(chosen, lam_history=zbest[1])
    return chosen, trials


def evaluate(data: Baskets, params: Params, proto: Protocol, category_of: Optional[dict[str, str]] = None,
             full_catalogue: bool = True, trained: Optional[tuple[Fitted, dict, dict]] = None) -> dict:
    """Everything the report shows, as plain data (JSON-able). ``trained``: ``train_calibrated``'s result, if at hand."""
    masks = proto.masks(data)
    t0 = time.perf_counter()
    final, tables, timings = trained or train_calibrated(data, params, proto)
    timings = dict(timings)
    hist = _histories(data, final, proto)
    qs = make_queries(data, final, masks["test"], proto.seed, limit=proto.max_queries)
    t1 = time.perf_counter()
    report = {
        "protocol": asdict(proto), "params": params.to_dict(),
        "data": {k: data.describe(masks[k]) for k in ("train", "calib", "test")},
        "vocabulary": final.n_vocab,
        "ranking": rank(data, final, qs, hist),
    }
    if full_catalogue:
        qf = make_queries(data, final, masks["test"], proto.seed, vocab_only=False, limit=proto.max_queries)
        report["ranking_full_catalogue"] = rank(data, final, qf, hist, ("popularity", "rules", "blend"))
    if proto.history == "live":
        frozen = replace(proto, history="frozen")
        report["ranking_frozen_history"] = rank(data, final, qs, _histories(data, final, frozen), ("personal", "blend"))
    if category_of:
        report["zone_choice"] = zone_choice(data, final, qs, hist, category_of)
    t2 = time.perf_counter()
    report["calibration_tables"] = tables
    report["reliability"] = reliability(data, final, hist, masks["test"], tables)
    timings.update({"ranking_s": t2 - t1, "reliability_s": time.perf_counter() - t2, "total_s": time.perf_counter() - t0})
    report["timings"] = timings
    return report

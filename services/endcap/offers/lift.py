"""Lift, honestly: attribute later baskets to eligible triggers of both arms and compare. Pure.

An *exposure* is an eligible trigger (a dwell that passed every rule): the treated arm saw the offer,
the holdout arm would have seen it and saw nothing. Only exposures with a loyalty id can be linked
to a basket. The attributed basket is the shopper's first basket received within
``[trigger, trigger + window]`` (gateway clock on both sides, so POS clock skew cannot move it);
the exposure *converts* when that basket holds the offered (or would-be) SKU.

KPIs per arm: exposures, baskets found, conversion (over linkable exposures; no basket = no
conversion), items and value per attributed basket (each basket counted once per arm). The lift is
treated − holdout with a 95 % interval: Newcombe's hybrid score interval for the conversion
difference, Welch's normal interval for means; relative lift by the delta method. Exposures are
treated as independent (a shopper with several triggers makes the intervals slightly optimistic).
"""
from __future__ import annotations

import bisect
import math
from dataclasses import dataclass
from typing import Iterable, Optional

Z95 = 1.959963984540054


@dataclass(frozen=True)
class Exposure:
    decision_id: str
    shopper_id: Optional[str]
    arm: str  # treated | holdout
    sku: str
    ts: float


@dataclass(frozen=True)
class BasketSeen:
    txn_id: str
    shopper_id: str
    ts: float  # when the gateway received it
    skus: frozenset[str]
    items: float
    value: float


@dataclass(frozen=True)
class Outcome:
    exposure: Exposure
    basket: Optional[BasketSeen]

    @property
    def converted(self) -> bool:
        return self.basket is not None and self.exposure.sku in self.basket.skus


def attribute(exposures: Iterable[Exposure], baskets: Iterable[BasketSeen], window_s: float) -> list[Outcome]:
    """One outcome per linkable exposure (anonymous ones are left out)."""
    by_shopper: dict[str, list[BasketSeen]] = {}
    for b in baskets:
        by_shopper.setdefault(b.shopper_id, []).append(b)
    times: dict[str, list[float]] = {}
    for sid, bs in by_shopper.items():
        bs.sort(key=lambda b: (b.ts, b.txn_id))
        times[sid] = [b.ts for b in bs]
    out = []
    for e in exposures:
        if not e.shopper_id:
            continue
        bs = by_shopper.get(e.shopper_id, [])
        i = bisect.bisect_left(times.get(e.shopper_id, []), e.ts)
        hit = bs[i] if i < len(bs) and bs[i].ts <= e.ts + window_s else None
        out.append(Outcome(e, hit))
    return out


def wilson(k: float, n: float) -> tuple[float, float]:
    if n <= 0:
        return (0.0, 1.0)
    p = k / n
    den = 1 + Z95 ** 2 / n
    mid = (p + Z95 ** 2 / (2 * n)) / den
    half = Z95 * math.sqrt(p * (1 - p) / n + Z95 ** 2 / (4 * n * n)) / den
    return (max(0.0, mid - half), min(1.0, mid + half))


def newcombe(k1: float, n1: float, k2: float, n2: float) -> tuple[float, float]:
    """95 % interval for p1 - p2 (Newcombe 1998, method 10)."""
    p1, p2 = (k1 / n1 if n1 else 0.0), (k2 / n2 if n2 else 0.0)
    l1, u1 = wilson(k1, n1)
    l2, u2 = wilson(k2, n2)
    d = p1 - p2
    return (d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2), d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2))


@dataclass(frozen=True)
class Stat:
    n: int
    mean: float
    var: float  # sample variance

    @classmethod
    def of(cls, xs: list[float]) -> "Stat":
        n = len(xs)
        if n == 0:
            return cls(0, float("nan"), float("nan"))
        mu = sum(xs) / n
        var = sum((x - mu) ** 2 for x in xs) / (n - 1) if n > 1 else float("nan")
        return cls(n, mu, var)


def diff_ci(a: Stat, b: Stat) -> dict:
    """a - b with Welch's normal 95 % interval and the relative difference (delta method)."""
    d = a.mean - b.mean
    se = math.sqrt(a.var / a.n + b.var / b.n) if a.n > 1 and b.n > 1 else float("nan")
    rel = d / b.mean if b.n and b.mean else float("nan")
    rel_se = float("nan")
    if a.n > 1 and b.n > 1 and a.mean and b.mean:
        rel_se = abs(a.mean / b.mean) * math.sqrt(a.var / a.n / a.mean ** 2 + b.var / b.n / b.mean ** 2)
    return {"diff": d, "ci95": [d - Z95 * se, d + Z95 * se], "relative": rel, "relative_ci95": [rel - Z95 * rel_se, rel + Z95 * rel_se]}


def kpis(outcomes: list[Outcome], *, decisions: int = 0, anonymous_exposures: int = 0) -> dict:
    """The lift report as plain data (docs/offers.md, "Reading the lift report")."""
    arms: dict[str, dict] = {}
    for arm in ("treated", "holdout"):
        outs = [o for o in outcomes if o.exposure.arm == arm]
        conv = sum(o.converted for o in outs)
        seen: dict[str, BasketSeen] = {}
        for o in outs:
            if o.basket is not None:
                seen[o.basket.txn_id] = o.basket
        items = Stat.of([b.items for b in seen.values()])
        value = Stat.of([b.value for b in seen.values()])
        lo, hi = wilson(conv, len(outs))
        arms[arm] = {"exposures": len(outs), "with_basket": sum(o.basket is not None for o in outs),
                     "conversions": conv, "conversion": conv / len(outs) if outs else float("nan"), "conversion_ci95": [lo, hi],
                     "baskets": len(seen), "items_per_basket": items.mean, "value_per_basket": value.mean,
                     "_items": items, "_value": value}
    t, h = arms["treated"], arms["holdout"]
    exposures = t["exposures"] + h["exposures"]
    lift = {
        "conversion": {"diff": t["conversion"] - h["conversion"] if t["exposures"] and h["exposures"] else float("nan"),
                       "ci95": list(newcombe(t["conversions"], t["exposures"], h["conversions"], h["exposures"]))
                       if t["exposures"] and h["exposures"] else [float("nan")] * 2},
        "items_per_basket": diff_ci(t.pop("_items"), h.pop("_items")),
        "value_per_basket": diff_ci(t.pop("_value"), h.pop("_value")),
    }
    return {"decisions": decisions, "eligible": exposures + anonymous_exposures, "linkable": exposures,
            "anonymous_exposures": anonymous_exposures,
            "offer_rate": t["exposures"] / decisions if decisions else float("nan"),
            "holdout_share": h["exposures"] / exposures if exposures else float("nan"),
            "arms": arms, "lift": lift}


def format_report(r: dict) -> str:
    def f(x, nd=3):
        return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{nd}f}"

    t, h, lf = r["arms"]["treated"], r["arms"]["holdout"], r["lift"]
    lines = [f"decisions {r['decisions']}, eligible triggers {r['eligible']} (linkable to baskets {r['linkable']}), "
             f"offer rate {f(r['offer_rate'])}, holdout share {f(r['holdout_share'])}",
             f"{'':18}{'treated':>12}{'holdout':>12}   lift (treated - holdout) [95 % CI]",
             f"{'exposures':18}{t['exposures']:>12}{h['exposures']:>12}",
             f"{'conversion':18}{f(t['conversion']):>12}{f(h['conversion']):>12}   {f(lf['conversion']['diff'])} "
             f"[{f(lf['conversion']['ci95'][0])}, {f(lf['conversion']['ci95'][1])}]"]
    for key, label in (("items_per_basket", "items/basket"), ("value_per_basket", "value/basket")):
        d = lf[key]
        lines.append(f"{label:18}{f(t[key], 2):>12}{f(h[key], 2):>12}   {f(d['diff'], 2)} [{f(d['ci95'][0], 2)}, {f(d['ci95'][1], 2)}]"
                     f"  relative {f(d['relative'])} [{f(d['relative_ci95'][0])}, {f(d['relative_ci95'][1])}]")
    return "\n".join(lines)

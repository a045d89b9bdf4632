"""The evaluation report: markdown for people, JSON for machines, and the gate ``make eval`` applies.

Gate (issue #4, DESIGN §7): the shipped blend reaches HR@5 >= 0.142 on the test weeks, and every
calibrated decile holding at least ``MIN_PAIRS`` pairs is within ±0.05 of what was observed.
"""
from __future__ import annotations

import json
from typing import Any

KNOWN = {"popularity": 0.044, "rules": 0.064, "blend": 0.142}
TARGET_HR5 = 0.142
MAX_GAP = 0.05
MIN_PAIRS = 100
NAMES = {"popularity": "popularity", "rules": "association rules (max confidence)", "cooc": "co-occurrence (Jaccard top-N) alone",
         "personal": "decayed personal frequency alone", "blend": "blend (shipped)"}


def gate(report: dict) -> list[str]:
    """Every unmet target, in words; empty when the report passes."""
    out = []
    hr = report["ranking"]["blend"]["hr5"]
    if hr < TARGET_HR5:
        out.append(f"blend HR@5 {hr:.4f} < {TARGET_HR5}")
    for ctx in ("history", "anonymous"):
        for row in report["reliability"][ctx]:
            if row["pairs"] >= MIN_PAIRS and abs(row["predicted"] - row["observed"]) > MAX_GAP:
                out.append(f"calibration {ctx} decile {row['decile']}: predicted {row['predicted']:.3f}, observed {row['observed']:.3f}")
    return out


def _f(x: Any, nd: int = 4) -> str:
    return "-" if x is None else f"{x:.{nd}f}"


def _reliability(rows: list[dict]) -> list[str]:
    out = ["| decile | pairs | bought | mean predicted | observed | 95 % CI | gap |", "|---|---:|---:|---:|---:|---|---:|"]
    for r in rows:
        if not r["pairs"]:
            out.append(f"| {r['decile']} | 0 | 0 | - | - | - | - |")
            continue
        gap = r["predicted"] - r["observed"]
        out.append(f"| {r['decile']} | {r['pairs']:,} | {r['positives']:,} | {_f(r['predicted'])} | {_f(r['observed'])} | "
                   f"{_f(r['ci95'][0])}–{_f(r['ci95'][1])} | {gap:+.4f} |")
    return out


def markdown(report: dict) -> str:
    p, d = report["protocol"], report["data"]
    lines = ["# Offers model evaluation", "",
             f"Data: {d['train'].get('source', '?')}; train weeks 1–{p['train_last_week']} ({d['train']['baskets']:,} baskets), "
             f"calibration slice weeks {p['train_last_week'] - p['calib_weeks'] + 1}–{p['train_last_week']} "
             f"({d['calib']['baskets']:,} baskets, scored by a model fitted on the weeks before it), "
             f"test weeks {p['test_first_week']}–{p['test_last_week']} ({d['test']['baskets']:,} baskets). "
             f"Vocabulary: {report['vocabulary']:,} SKUs (in >= {report['params']['vocab_min_baskets']} training baskets). "
             f"History: {p['history']}. Seed {p['seed']}.", "",
             "## Ranking: one held-out item per test basket", "",
             "| model | HR@5 | 95 % CI | NDCG@5 | known HR@5 | queries |", "|---|---:|---|---:|---:|---:|"]
    for m, r in report["ranking"].items():
        lo, hi = r["hr5_ci95"]
        lines.append(f"| {NAMES.get(m, m)} | {_f(r['hr5'])} | {_f(lo)}–{_f(hi)} | {_f(r['ndcg5'])} | {KNOWN.get(m, '-')} | {r['queries']:,} |")
    for key, title in (("ranking_full_catalogue", "Held-out item drawn from the whole basket (outside the vocabulary = miss)"),
                       ("ranking_frozen_history", "History frozen at the end of the training weeks")):
        if key in report:
            lines += ["", f"{title}:", "", "| model | HR@5 | NDCG@5 |", "|---|---:|---:|"]
            lines += [f"| {NAMES.get(m, m)} | {_f(r['hr5'])} | {_f(r['ndcg5'])} |" for m, r in report[key].items()]
    if "zone_choice" in report:
        z = report["zone_choice"]
        lines += ["", "## In-zone choice (what the gateway decides: the held-out item's category, history only)", "",
                  "| chooser | HR@1 | queries |", "|---|---:|---:|"]
        lines += [f"| {k} | {_f(v['hr1'])} | {v['queries']:,} |" for k, v in z.items()]
    rel = report["reliability"]
    lines += ["", "## Calibration on the test weeks (every basket × vocabulary item pair)", "",
              "Relevance = probability that the shopper buys the SKU on this trip. Known shopper (history context):", ""]
    lines += _reliability(rel["history"])
    lines += ["", "The same pairs before calibration (shrunk personal rate, clipped to [0, 1]):", ""]
    lines += _reliability(rel["history_raw"])
    lines += ["", "Anonymous shopper (popularity prior, calibrated):", ""]
    lines += _reliability(rel["anonymous"])
    lines += ["", "Largest |predicted − observed| over deciles with >= 100 pairs: "
              + ", ".join(f"{k} {_f(v, 3)}" for k, v in rel["max_gap"].items())]
    if report.get("tuning"):
        lines += ["", "## Tuning on the calibration slice (never the test weeks)", "", "```"]
        lines += [json.dumps(t) for t in report["tuning"]]
        lines += ["```"]
    if report.get("package"):
        pk = report["package"]
        lines += ["", "## Package", "", f"{pk['path']}: {pk['bytes']:,} bytes, version {pk['version']}, "
                  f"built in {pk['build_s']:.1f} s (load {pk['load_s']:.1f} s)."]
    t = report["timings"]
    lines += ["", f"Evaluation took {t['total_s']:.0f} s.", ""]
    failed = gate(report)
    lines += ["## Gate", "", "PASS" if not failed else "FAIL: " + "; ".join(failed), ""]
    return "\n".join(lines)

"""Shared helpers for benchmarks: the result schema, medians, host description, writing and printing.

Result schema (DESIGN.md §7), exactly these keys::

    {"name", "metric", "value", "unit", "target", "anchor": {"name", "value"}, "ratio", "runs", "host"}

``value`` and ``anchor.value`` are medians over ``runs``; ``ratio`` = value ÷ anchor.value, both
measured in the same process run. ``runs`` lists one dict per run with at least ``value`` and
``anchor`` (a benchmark may add per-run details such as loss). ``target`` is a plain expression
``"<value|ratio> <op> <number>"`` (op one of >=, <=, >, <) so a reader and ``target_met`` agree.
"""
from __future__ import annotations

import json
import operator
import os
import platform
import statistics
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from endcap.core.atomic import atomic_write

RESULTS_DIR = Path(__file__).resolve().parent / "results"
KEYS = ("name", "metric", "value", "unit", "target", "anchor", "ratio", "runs", "host")
_OPS = {">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt}


def median(values: Iterable[float]) -> float:
    vals = list(values)
    if not vals:
        raise ValueError("median of no values")
    return float(statistics.median(vals))


def percentile(values: Iterable[float], q: float) -> float:
    """The ``q`` quantile (0..1) by nearest rank: a value that was actually measured."""
    vals = sorted(values)
    if not vals:
        raise ValueError("percentile of no values")
    return float(vals[min(len(vals) - 1, int(round(q * (len(vals) - 1))))])


def host_info() -> dict[str, Any]:
    """A short description of the machine, so results from different hosts are not compared blindly."""
    return {
        "cpu": _cpu_model(),
        "nproc": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "python": platform.python_version(),
        "machine": platform.machine(),
    }


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, val = line.partition(":")
                # x86 says "model name"; many ARM kernels (Jetson) only say "Model" or nothing.
                if key.strip() in ("model name", "Model", "Hardware"):
                    return val.strip()
    except OSError:
        pass  # not Linux: fall back to what platform knows
    return platform.processor() or platform.machine()


def make_result(*, name: str, metric: str, unit: str, target: str, anchor_name: str,
                runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Build a result from per-run dicts (each with ``value`` and ``anchor``): medians and their ratio."""
    value = median(r["value"] for r in runs)
    anchor = median(r["anchor"] for r in runs)
    result = {
        "name": name,
        "metric": metric,
        "value": value,
        "unit": unit,
        "target": target,
        "anchor": {"name": anchor_name, "value": anchor},
        "ratio": value / anchor if anchor else None,
        "runs": runs,
        "host": host_info(),
    }
    check_result(result)
    return result


def check_result(result: dict[str, Any]) -> None:
    """Raise ValueError unless ``result`` has exactly the schema's keys and a parseable target."""
    if tuple(sorted(result)) != tuple(sorted(KEYS)):
        raise ValueError(f"result keys {sorted(result)} are not the schema's {sorted(KEYS)}")
    if sorted(result["anchor"]) != ["name", "value"]:
        raise ValueError(f"anchor keys {sorted(result['anchor'])} are not ['name', 'value']")
    _parse_target(result["target"])


def _parse_target(target: str) -> tuple[str, str, float]:
    parts = target.split()
    if len(parts) != 3 or parts[0] not in ("value", "ratio") or parts[1] not in _OPS:
        raise ValueError(f"target {target!r} is not '<value|ratio> <op> <number>'")
    return parts[0], parts[1], float(parts[2])


def target_met(result: dict[str, Any]) -> bool | None:
    """Whether the result meets its target; None when the measured side is missing."""
    field, op, bound = _parse_target(result["target"])
    got = result[field]
    return None if got is None else _OPS[op](got, bound)


def write_result(result: dict[str, Any], results_dir: Path = RESULTS_DIR) -> Path:
    """Write ``<results_dir>/<name>.json`` atomically (a crash never leaves a torn result to commit)."""
    check_result(result)
    path = results_dir / f"{result['name']}.json"
    atomic_write(path, (json.dumps(result, indent=2, sort_keys=False) + "\n").encode())
    return path


def _fmt(x: Any) -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        if abs(x) >= 1000:
            return f"{x:,.0f}"
        return f"{x:.3g}"
    return str(x)


def format_table(results: list[dict[str, Any]]) -> str:
    """One plain-text table of results: what we measured, the anchor, the ratio and the target."""
    header = ("benchmark", "value", "unit", "anchor", "ratio", "target", "met")
    rows = [header]
    for r in results:
        met = target_met(r)
        rows.append((r["name"], _fmt(r["value"]), r["unit"], _fmt(r["anchor"]["value"]),
                     _fmt(r["ratio"]), r["target"], {True: "yes", False: "NO", None: "-"}[met]))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)

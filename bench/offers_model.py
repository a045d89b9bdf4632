"""Offers model build: seconds to build the shipped package from Complete Journey, and its size.

Ours: load the data, fit the blend (vocabulary, Jaccard top-50, rules), fit the calibration tables on
weeks 41-44 with a model fitted on weeks 1-40, refit on weeks 1-44 and write the package. Anchor, in
the same run: the popularity baseline (load the data, count baskets per item). Target: a rebuild in
well under a minute on a 2-core host ("rebuilt in seconds"); the size is recorded per run.
"""
from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.common import make_result, write_result

RUNS = 3


def _popularity_s() -> float:
    from endcap_models.data import load_complete_journey

    t0 = time.perf_counter()
    d = load_complete_journey()
    np.bincount(d.items[d.week[d.line_basket()] <= 44], minlength=d.n_items)
    return time.perf_counter() - t0


def _blend_s(out: Path) -> tuple[float, int]:
    from endcap_models.data import load_complete_journey
    from endcap_models.evaluate import Protocol, train_calibrated
    from endcap_models.package import package_size, write_package
    from endcap_models.train import Params

    t0 = time.perf_counter()
    d = load_complete_journey()
    f, tables, _ = train_calibrated(d, Params(), Protocol())
    write_package(out, f, tables, replace=True)
    return time.perf_counter() - t0, package_size(out)


def run() -> dict:
    runs = []
    tmp = Path(tempfile.mkdtemp(prefix="ecbm-"))
    try:
        for i in range(RUNS):
            anchor = _popularity_s()
            value, size = _blend_s(tmp / f"p{i}")
            runs.append({"value": value, "anchor": anchor, "package_bytes": size})
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    result = make_result(name="offers_model", metric="offers model build (load + fit + calibrate + package)", unit="s",
                         target="value <= 60", anchor_name="popularity baseline build (load + count)", runs=runs)
    write_result(result)
    return result

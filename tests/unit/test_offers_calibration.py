"""Calibration (isotonic fit, reliability) and the lift statistics, on data whose truth is known."""
from __future__ import annotations

import math
import random

import numpy as np
import pytest

from endcap_models import calibrate
from endcap.offers import lift
from endcap.offers.model import Calibration


def test_pav_makes_rates_monotone_and_keeps_the_weighted_mean():
    x, y, w = calibrate._pav([1, 2, 3, 4], [0.1, 0.5, 0.3, 0.9], [1, 1, 1, 1])
    assert y == [0.1, 0.4, 0.9] and w == [1, 2, 1] and x == [1, 2.5, 4]


def test_fit_table_recovers_a_known_miscalibration_and_the_gateway_applies_it_the_same_way():
    # true P(buy | raw) = raw / 2: raw scores twice over-confident, like raw rule confidence on grocery data
    rng = np.random.default_rng(3)
    acc = calibrate.Accumulator()
    for _ in range(200):
        raw = rng.uniform(0, 0.8, 2000)
        acc.add(raw, np.flatnonzero(rng.random(2000) < raw / 2))
    table = calibrate.fit_table(acc)
    probe = np.array([0.1, 0.3, 0.5, 0.7])
    assert np.allclose(calibrate.apply_table(table, probe), probe / 2, atol=0.02)
    gw = Calibration(tuple(table["x"]), tuple(table["y"]))
    assert [gw(v) for v in probe] == pytest.approx(calibrate.apply_table(table, probe).tolist())
    assert all(a <= b for a, b in zip(table["y"], table["y"][1:]))
    # and a reliability table of the calibrated predictions on fresh data is within 0.02 per decile
    rel = calibrate.Reliability()
    raw = rng.uniform(0, 0.8, 200_000)
    rel.add(calibrate.apply_table(table, raw), np.flatnonzero(rng.random(len(raw)) < raw / 2))
    assert calibrate.max_gap(rel.rows()) < 0.02
    uncal = calibrate.Reliability()
    uncal.add(raw, np.flatnonzero(rng.random(len(raw)) < raw / 2))
    assert calibrate.max_gap(uncal.rows()) > 0.2  # the raw scores are visibly off: the check can fail


def test_fit_table_refuses_too_little_data():
    acc = calibrate.Accumulator()
    acc.add(np.array([0.1, 0.2]), np.array([0]))
    with pytest.raises(ValueError):
        calibrate.fit_table(acc)


def test_wilson_interval_known_values():
    lo, hi = calibrate.wilson(10, 100)
    assert (round(lo, 4), round(hi, 4)) == (0.0552, 0.1744)
    assert lift.wilson(10, 100) == pytest.approx((lo, hi), rel=1e-4)  # z = 1.96 vs the exact quantile


def test_newcombe_difference_interval_known_value():
    # Newcombe (1998) example: 56/70 vs 48/80 -> difference 0.2, 95 % CI 0.0524 to 0.3339
    lo, hi = lift.newcombe(56, 70, 48, 80)
    assert (round(lo, 4), round(hi, 4)) == (0.0524, 0.3339)


def _basket(txn, shopper, ts, skus, items=None, value=10.0):
    return lift.BasketSeen(txn, shopper, ts, frozenset(skus), items if items is not None else len(skus), value)


def test_attribution_takes_the_first_basket_within_the_window_and_skips_anonymous_triggers():
    ex = [lift.Exposure("1", "s1", "treated", "A", 100.0), lift.Exposure("2", "s2", "holdout", "A", 100.0),
          lift.Exposure("3", None, "treated", "A", 100.0), lift.Exposure("4", "s3", "treated", "A", 100.0)]
    baskets = [_basket("b0", "s1", 99.0, ["A"]),  # before the trigger: not this trip
               _basket("b1", "s1", 150.0, ["B"]), _basket("b2", "s1", 160.0, ["A"]),  # first after: b1 (no A)
               _basket("b3", "s2", 120.0, ["A"]), _basket("b4", "s3", 100.0 + 7201, ["A"])]  # s3: outside the window
    out = {o.exposure.decision_id: o for o in lift.attribute(ex, baskets, 7200)}
    assert set(out) == {"1", "2", "4"}
    assert out["1"].basket.txn_id == "b1" and not out["1"].converted
    assert out["2"].converted and out["4"].basket is None and not out["4"].converted


def test_kpis_on_a_simulated_experiment_find_the_injected_lift_and_cover_zero_without_one():
    rng = random.Random(11)

    def experiment(effect: float) -> dict:
        ex, bs = [], []
        for i in range(4000):
            arm = "holdout" if rng.random() < 0.5 else "treated"
            base = rng.random() < 0.10
            bought = base or (arm == "treated" and rng.random() < effect)
            ex.append(lift.Exposure(str(i), f"s{i}", arm, "A", 0.0))
            items = 10 + rng.gauss(0, 0.5) + (1 if bought and not base else 0)
            bs.append(_basket(f"b{i}", f"s{i}", 1.0, ["A"] if bought else ["B"], items=items, value=items * 2))
        return lift.kpis(lift.attribute(ex, bs, 60), decisions=5000)

    r = experiment(0.10)
    lo, hi = r["lift"]["conversion"]["ci95"]
    assert lo > 0.06 and hi < 0.14 and lo < 0.09 < hi  # truth: 0.10 * 0.9 = 0.09
    assert r["arms"]["treated"]["exposures"] + r["arms"]["holdout"]["exposures"] == 4000
    assert r["offer_rate"] == pytest.approx(r["arms"]["treated"]["exposures"] / 5000)
    assert r["lift"]["items_per_basket"]["ci95"][0] > 0
    null = experiment(0.0)
    lo, hi = null["lift"]["conversion"]["ci95"]
    assert lo < 0 < hi
    assert "conversion" in lift.format_report(r)


def test_kpis_with_an_empty_arm_do_not_crash():
    r = lift.kpis([], decisions=0)
    assert math.isnan(r["lift"]["conversion"]["diff"]) and r["arms"]["treated"]["exposures"] == 0
    lift.format_report(r)

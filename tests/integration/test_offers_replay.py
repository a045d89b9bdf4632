"""End-to-end replay: held-out shoppers of store 367 dwell in zones in front of the real pos and offers
services; offers are shown or held out; baskets are checked out; the lift report must find the effect
the simulated shoppers were given (a shown offer's SKU is added with probability ``accept``), and no
offer may ever name a SKU the POS says is out of stock."""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from endcap.offers.lift import format_report
from endcap.sim import offers_replay
from tests.fixtures import offers as fx


def test_replay_shows_offers_holds_out_and_measures_the_injected_lift(tmp_path):
    root = Path(tempfile.mkdtemp(prefix="ecr-"))  # short: unix socket paths
    try:
        model = fx.write_model(tmp_path / "model", "replay")
        out = offers_replay.run(root, model, trips=1000, accept=0.8, holdout=0.5, threshold=0.02, seed=7)
    finally:
        shutil.copytree(root / "log", tmp_path / "log", dirs_exist_ok=True)  # kept with pytest's temp dirs
        shutil.rmtree(root, ignore_errors=True)
    lift = out["lift"]
    print(format_report(lift))
    why = _explain(out, tmp_path / "log")
    t, h = lift["arms"]["treated"], lift["arms"]["holdout"]
    assert out["trips"] >= 500 and len(out["offers"]) >= 40, why  # every held-out basket of the store is one trip
    assert out["offered_out_of_stock"] == [] and len(out["out_of_stock"]) == 2
    assert {"offered", "holdout", "below_threshold", "low_confidence"} <= set(lift["reasons"])
    assert t["exposures"] >= 40 and h["exposures"] >= 40 and 0.3 < lift["holdout_share"] < 0.7
    # every shown offer was an eligible, treated exposure
    assert t["exposures"] == len(out["offers"])
    # the injected effect: accepted / treated exposures is what the conversion difference should find
    truth = out["accepted"] / t["exposures"]
    lo, hi = lift["lift"]["conversion"]["ci95"]
    assert lo > 0 and lo <= truth <= hi, (lo, truth, hi)
    assert lift["lift"]["items_per_basket"]["diff"] == lift["lift"]["items_per_basket"]["diff"]  # a number, not NaN


def _explain(out: dict, logs: Path) -> str:
    """What a failure message needs: the decision reasons, both services' last health, their log tails."""
    lines = [f"reasons: {out['lift']['reasons']}"]
    for name, health in out["health"].items():
        lines.append(f"{name} health: {health}")
    for log in sorted(logs.glob("*.log")):
        lines.append(f"--- {log.name} (last lines)")
        lines += log.read_text(errors="replace").splitlines()[-15:]
    return "\n".join(lines)

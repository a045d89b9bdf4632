"""The upload sweep's pure decision: what goes, what stays, for each updater answer."""
from __future__ import annotations

import pytest

from endcap.core.errors import EndcapError
from endcap.maint.sweep import MAX_AGE_S, Entry, plan_sweep

NOW = 1_800_000_000.0
A, B, C = ("bundle-" + c * 32 for c in "abc")
OLD, NEWER, FRESH = NOW - 3 * MAX_AGE_S, NOW - 2 * MAX_AGE_S, NOW - 60


def listing():
    return [Entry(f"{A}.part", 10, FRESH), Entry(f"{A}.raucb", 100, OLD), Entry(f"{B}.raucb", 200, NEWER),
            Entry(f"{C}.raucb", 300, FRESH), Entry("notes.txt", 5, OLD), Entry("bundle-xyz.part", 1, OLD),
            Entry(f"{B}.raucb.bak", 1, OLD)]


def names(plan):
    return [r.name for r in plan]


def test_updater_idle_removes_partials_and_old_finished_only():
    plan = plan_sweep(listing(), NOW, "idle")
    assert names(plan) == [f"{A}.part", f"{A}.raucb", f"{B}.raucb"]  # fresh C and foreign names stay
    reasons = {r.name: r.reason for r in plan}
    assert reasons[f"{A}.part"] == "partial upload" and "not installing" in reasons[f"{B}.raucb"]
    assert {r.name: r.size for r in plan}[f"{B}.raucb"] == 200
    assert names(plan_sweep(listing(), NOW, "failed")) == names(plan)


def test_updater_busy_keeps_the_newest_finished_whatever_its_age():
    entries = [e for e in listing() if e.name != f"{C}.raucb"]  # the newest left is B, and it is old
    for state in ("installing", "verifying", "downloading", "rebooting", "confirming", "checking"):
        assert names(plan_sweep(entries, NOW, state)) == [f"{A}.part", f"{A}.raucb"], state
    assert names(plan_sweep(listing(), NOW, "installing")) == [f"{A}.part", f"{A}.raucb", f"{B}.raucb"]


def test_updater_silent_keeps_every_finished_upload():
    assert names(plan_sweep(listing(), NOW, None)) == [f"{A}.part"]


def test_bound_and_clock_edges():
    entries = [Entry(f"{A}.raucb", 1, NOW - 10), Entry(f"{B}.raucb", 1, NOW + 500)]  # B: mtime in the future
    assert plan_sweep(entries, NOW, "idle", max_age_s=10) == []  # exactly at the bound: kept
    assert names(plan_sweep(entries, NOW, "idle", max_age_s=9)) == [f"{A}.raucb"]
    assert plan_sweep([], NOW, "idle") == [] and plan_sweep([], NOW, None) == []
    with pytest.raises(EndcapError, match="max_age_s -1"):
        plan_sweep(entries, NOW, "idle", max_age_s=-1)

"""The simulator's fault plan (endcap.sim.faults): pure, seeded, every fault happens, roles never collide."""
from __future__ import annotations

import random

import pytest

from endcap.sim.faults import (
    ALL_FAULTS,
    MIN_BASKETS,
    PER_BASKET,
    SKEW_S,
    FaultPlan,
    parse_faults,
    plan_faults,
)

LINES = [((i * 7) % 11) + 1 for i in range(300)]  # 300 baskets of 1..11 lines


def plan(seed=1, faults=ALL_FAULTS, lines=LINES, **kw) -> FaultPlan:
    return plan_faults(random.Random(seed), lines, faults, **kw)


def roles(p: FaultPlan) -> dict[int, list[str]]:
    out: dict[int, list[str]] = {}
    for acts in p.actions.values():
        for a in acts:
            if a.kind != "add_column":
                out.setdefault(a.target, []).append(a.kind)
    return out


def test_parse_faults_all_none_and_lists():
    assert parse_faults("all") == frozenset(ALL_FAULTS)
    assert parse_faults("none") == frozenset()
    assert parse_faults(" late, cancel ,") == {"late", "cancel"}


def test_parse_faults_names_the_unknown_fault():
    with pytest.raises(ValueError, match="'bogus'"):
        parse_faults("late,bogus")


def test_same_seed_same_plan_other_seed_other_plan():
    assert plan(1) == plan(1)
    assert plan(1) != plan(2)


def test_every_enabled_fault_happens():
    counts = plan().counts()
    assert set(counts) == set(ALL_FAULTS)
    assert all(v > 0 for v in counts.values())


def test_every_fault_happens_even_with_tiny_rates():
    p = plan(rates={k: 0.0 for k in PER_BASKET}, lines=LINES[:MIN_BASKETS])
    assert set(p.counts()) == set(ALL_FAULTS)


@pytest.mark.parametrize("only", ALL_FAULTS)
def test_disabled_faults_never_happen(only):
    assert set(plan(faults=[only]).counts()) == {only}


def test_no_faults_is_an_empty_plan():
    p = plan(faults=())
    assert p.counts() == {} and not p.held and not p.suspended and p.skew_at(5) == 0.0
    assert plan(lines=[]) == FaultPlan()


def test_a_basket_has_at_most_one_role_and_actions_follow_their_target():
    p = plan(3)
    assert all(len(kinds) == 1 for kinds in roles(p).values())
    for at, acts in p.actions.items():
        assert 0 <= at < len(LINES)
        for a in acts:
            assert a.kind == "add_column" or a.target <= at
    assert p.held == {t for t, k in roles(p).items() if k == ["late_insert"]}
    assert p.suspended == {t for t, k in roles(p).items() if k == ["flip"]}


def test_returns_give_back_real_lines_and_late_stays_in_bounds():
    p = plan(4, late_max_s=120.0, late_min_s=31.0)
    for acts in p.actions.values():
        for a in acts:
            if a.kind == "return":
                assert a.lines and len(set(a.lines)) == len(a.lines)
                assert all(1 <= ln <= LINES[a.target] for ln in a.lines)
            if a.kind == "late_insert":
                assert 31.0 <= a.back_s <= 120.0


def test_column_is_added_once_mid_replay():
    adds = [at for at, acts in plan().actions.items() for a in acts if a.kind == "add_column"]
    assert len(adds) == 1 and len(LINES) // 3 <= adds[0] <= 2 * len(LINES) // 3


def test_skew_stretches_do_not_overlap_and_go_both_ways():
    p = plan(5)
    assert len(p.skew) >= 2
    assert {off for _, _, off in p.skew} == {SKEW_S, -SKEW_S}
    covered: set[int] = set()
    for first, last, off in p.skew:
        span = set(range(first, last + 1))
        assert not covered & span and 0 <= first <= last < len(LINES)
        covered |= span
        assert p.skew_at(first) == off and p.skew_at(last) == off
    assert all(p.skew_at(i) == 0.0 for i in range(len(LINES)) if i not in covered)


def test_bad_rates_and_names_are_refused():
    with pytest.raises(ValueError):
        plan(rates={"late": 0.9, "cancel": 0.5})
    with pytest.raises(ValueError):
        plan(rates={"late": -0.1})
    with pytest.raises(ValueError, match="'nope'"):
        plan(faults=["nope"])
    with pytest.raises(ValueError):
        plan(late_max_s=0)


@pytest.mark.parametrize("seed", range(20))
def test_a_late_sale_is_written_after_a_basket_written_on_time(seed):
    p = plan(seed, rates={"late": 0.2, "suspend_flip": 0.2})
    assert p.held
    for at, acts in p.actions.items():
        for a in acts:
            if a.kind == "late_insert":
                assert a.target < at and at not in p.held and at not in p.suspended

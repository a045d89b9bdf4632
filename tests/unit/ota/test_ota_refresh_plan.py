"""The scheduled job's pure plan: which roles to re-sign, which need keys that are not at hand."""
from __future__ import annotations

import datetime as dt

from endcap_ota.status import RoleStatus, expiry_state, plan_refresh

NOW = dt.datetime(2030, 1, 1, tzinfo=dt.timezone.utc)
LIFETIME = {"root": 365, "targets": 30, "snapshot": 7, "timestamp": 1, "bundles": 30, "canary": 30, "fleet": 30}


def role(name: str, days_left: float) -> RoleStatus:
    expires = NOW + dt.timedelta(days=days_left)
    left, state = expiry_state(expires, NOW, LIFETIME[name])
    return RoleStatus(name, 1, expires, left, state)


def test_only_due_roles_with_keys_are_resigned():
    roles = [role("root", 200), role("targets", 7), role("snapshot", 6), role("timestamp", 0.1),
             role("bundles", -1), role("canary", 7.6), role("fleet", 7.4)]
    resign, needs = plan_refresh(roles, {"targets", "snapshot", "timestamp", "bundles", "canary", "fleet"})
    assert resign == ["targets", "bundles", "fleet"]  # 7 < 7.5 days (a quarter of 30); expired counts too
    assert needs == []


def test_due_roles_without_keys_are_reported_not_resigned():
    roles = [role("root", 30), role("targets", 1), role("snapshot", 1), role("timestamp", 0.01), role("canary", 40)]
    resign, needs = plan_refresh(roles, {"snapshot", "timestamp"})
    assert resign == ["snapshot"] and needs == ["root", "targets"]


def test_timestamp_is_never_part_of_the_plan():
    assert plan_refresh([role("timestamp", -3)], set()) == ([], [])
    assert plan_refresh([role("timestamp", -3)], {"timestamp"}) == ([], [])

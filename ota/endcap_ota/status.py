"""What ``endcap-ota status`` reports, the pure expiry classification behind it, and the refresh plan."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

NEAR_FRACTION = 0.25  # warn when less than a quarter of the role's configured lifetime is left


@dataclass(frozen=True)
class RoleStatus:
    role: str
    version: int
    expires: dt.datetime
    days_left: float
    state: str  # ok | near-expiry | expired


@dataclass(frozen=True)
class RepoStatus:
    rings: dict[str, dict[str, str | None]] = field(default_factory=dict)  # ring -> compatible -> version
    roles: list[RoleStatus] = field(default_factory=list)

    @property
    def problems(self) -> list[RoleStatus]:
        return [r for r in self.roles if r.state != "ok"]


def expiry_state(expires: dt.datetime, now: dt.datetime, lifetime_days: float) -> tuple[float, str]:
    """(days left, state) for metadata expiring at ``expires`` (pure)."""
    left = (expires - now).total_seconds() / 86400
    if left <= 0:
        return left, "expired"
    if left < lifetime_days * NEAR_FRACTION:
        return left, "near-expiry"
    return left, "ok"


def plan_refresh(roles: list[RoleStatus], signable: set[str]) -> tuple[list[str], list[str]]:
    """(roles to re-sign now, roles due whose keys are not at hand) for the scheduled job (pure).

    A role is due when it is not ``ok`` (near expiry or expired). The timestamp is left out: the job
    writes a new one every run anyway.
    """
    due = [r.role for r in roles if r.state != "ok" and r.role != "timestamp"]
    return [r for r in due if r in signable], [r for r in due if r not in signable]

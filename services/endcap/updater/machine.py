"""The update state machine (pure): events in, typed actions out; no I/O, no clock reads.

idle → checking → downloading → verifying → installing → rebooting → (reboot) → confirming →
committed (MarkGood, RaiseFloor) or rolled back (MarkBad, Reboot) → idle; any step may end in ``failed``
(which behaves like idle for the next check). What must survive a reboot is ``Pending`` (version,
epoch, the slot we came from, the confirm deadline, why we roll back); the shell persists the whole
``State`` whenever an action list contains ``Persist``, before running the other actions.

Invariants: MarkGood and RaiseFloor are emitted only in ``confirming`` after a healthy report on a slot
other than the one we came from; a Reboot is emitted only inside the reboot window (or at once when no
window is configured) or to roll back; a refused/failed step never leaves ``pending`` set.
"""
from __future__ import annotations

from typing import Optional, Union

import msgspec

IDLE, CHECKING, DOWNLOADING, VERIFYING, INSTALLING, REBOOTING, CONFIRMING, FAILED = (
    "idle", "checking", "downloading", "verifying", "installing", "rebooting", "confirming", "failed")


class Pending(msgspec.Struct, frozen=True, kw_only=True):
    version: str
    epoch: int
    from_slot: str  # bootname running when the install was made
    rollback: bool = False  # MarkBad was issued: the next boot must be from_slot
    rebooted: bool = False  # a Reboot was issued for this pending change
    deadline: Optional[float] = None  # confirm deadline (wall clock, seconds)
    reason: str = ""  # rollback reason


class State(msgspec.Struct, frozen=True, kw_only=True):
    phase: str = IDLE
    booted: Optional[str] = None
    target: Optional[str] = None  # version being fetched/verified/installed
    target_epoch: int = 0
    pending: Optional[Pending] = None
    message: str = ""
    last_result: Optional[str] = None
    rollback_reason: Optional[str] = None


# --- events -----------------------------------------------------------------------------------

class Started(msgspec.Struct, frozen=True):
    booted: str
    now: float


class CheckNow(msgspec.Struct, frozen=True):
    pass


class Offered(msgspec.Struct, frozen=True):
    version: Optional[str]  # None: nothing newer for this device
    epoch: int = 0
    note: str = ""  # with None: why nothing is taken (default message "up to date")


class LocalBundle(msgspec.Struct, frozen=True):
    path: str
    version: str
    epoch: int


class Fetched(msgspec.Struct, frozen=True):
    path: str


class Verified(msgspec.Struct, frozen=True):
    path: str


class Installed(msgspec.Struct, frozen=True):
    pass


class StepFailed(msgspec.Struct, frozen=True):
    reason: str
    refused: bool = False  # an integrity refusal (never retried for this version) vs a transient failure


class Tick(msgspec.Struct, frozen=True):
    now: float
    in_window: bool


class HealthReport(msgspec.Struct, frozen=True):
    ok: bool
    unhealthy: str = ""  # "svc: status line; ..." of the services not healthy


Event = Union[Started, CheckNow, Offered, LocalBundle, Fetched, Verified, Installed, StepFailed, Tick, HealthReport]


# --- actions ----------------------------------------------------------------------------------

class Poll(msgspec.Struct, frozen=True):
    pass


class Download(msgspec.Struct, frozen=True):
    version: str


class Verify(msgspec.Struct, frozen=True):
    path: str
    version: str
    epoch: int


class Install(msgspec.Struct, frozen=True):
    path: str


class Reboot(msgspec.Struct, frozen=True):
    pass


class MarkGood(msgspec.Struct, frozen=True):
    pass


class MarkBad(msgspec.Struct, frozen=True):
    pass


class RaiseFloor(msgspec.Struct, frozen=True):
    epoch: int
    version: str


class Record(msgspec.Struct, frozen=True):
    version: str
    outcome: str  # installed | committed | rolled-back | refused | failed
    reason: str = ""


class Persist(msgspec.Struct, frozen=True):
    pass


class Publish(msgspec.Struct, frozen=True):
    pass


Action = Union[Poll, Download, Verify, Install, Reboot, MarkGood, MarkBad, RaiseFloor, Record, Persist, Publish]


def _busy(s: State) -> bool:
    return s.phase not in (IDLE, FAILED)


def step(s: State, ev: Event, *, confirm_timeout_s: float) -> tuple[State, list[Action]]:
    """One transition. Events that do not apply in the current phase change nothing."""
    r = msgspec.structs.replace
    if isinstance(ev, Started):
        p = s.pending
        if p is None:
            return r(s, phase=IDLE, booted=ev.booted, target=None), [Persist(), Publish()]
        if p.rollback or (p.rebooted and ev.booted == p.from_slot):
            why = p.reason or f"slot {p.from_slot} booted again: the new slot did not come up"
            acts: list[Action] = [Persist(), Publish()]
            if not p.rollback:  # GRUB fell back on its own: the rollback was not recorded yet
                acts.insert(0, Record(p.version, "rolled-back", why))
            return r(s, phase=IDLE, booted=ev.booted, pending=None, last_result="rolled-back",
                     rollback_reason=why, message=f"{p.version} rolled back: {why}"), acts
        if ev.booted != p.from_slot:
            p2 = r(p, rebooted=True, deadline=ev.now + confirm_timeout_s)
            return r(s, phase=CONFIRMING, booted=ev.booted, pending=p2,
                     message=f"{p.version} booted; waiting for services to report healthy"), [Persist(), Publish()]
        return r(s, phase=REBOOTING, booted=ev.booted,
                 message=f"{p.version} installed; reboot pending"), [Persist(), Publish()]

    if isinstance(ev, CheckNow):
        if _busy(s):
            return s, []
        return r(s, phase=CHECKING, message="checking for updates"), [Poll(), Publish()]

    if isinstance(ev, Offered) and s.phase == CHECKING:
        if ev.version is None:
            return r(s, phase=IDLE, message=ev.note or "up to date"), [Publish()]
        return (r(s, phase=DOWNLOADING, target=ev.version, target_epoch=ev.epoch, message=f"downloading {ev.version}"),
                [Download(ev.version), Publish()])

    if isinstance(ev, LocalBundle):
        if _busy(s):
            return s, []
        return (r(s, phase=VERIFYING, target=ev.version, target_epoch=ev.epoch, message=f"verifying {ev.version}"),
                [Verify(ev.path, ev.version, ev.epoch), Publish()])

    if isinstance(ev, Fetched) and s.phase == DOWNLOADING and s.target is not None:
        return (r(s, phase=VERIFYING, message=f"verifying {s.target}"),
                [Verify(ev.path, s.target, s.target_epoch), Publish()])

    if isinstance(ev, Verified) and s.phase == VERIFYING:
        return r(s, phase=INSTALLING, message=f"installing {s.target}"), [Persist(), Install(ev.path), Publish()]

    if isinstance(ev, Installed) and s.phase == INSTALLING and s.target is not None and s.booted is not None:
        p = Pending(version=s.target, epoch=s.target_epoch, from_slot=s.booted)
        return (r(s, phase=REBOOTING, pending=p, target=None, last_result="installed",
                  message=f"{s.target} installed; reboot pending"),
                [Persist(), Record(s.target, "installed"), Publish()])

    if isinstance(ev, StepFailed) and s.phase in (CHECKING, DOWNLOADING, VERIFYING, INSTALLING):
        outcome = "refused" if ev.refused else "failed"
        acts = [Record(s.target, outcome, ev.reason)] if s.target else []
        return (r(s, phase=FAILED, target=None, last_result=outcome, message=ev.reason),
                [*acts, Persist(), Publish()])

    if isinstance(ev, Tick) and s.pending is not None:
        p = s.pending
        if s.phase == REBOOTING and not p.rebooted and (ev.in_window or p.rollback):
            return r(s, pending=r(p, rebooted=True), message="rebooting"), [Persist(), Reboot()]
        if s.phase == CONFIRMING and p.deadline is not None and ev.now >= p.deadline:
            return _roll_back(s, "services not healthy within the confirm timeout")

    if isinstance(ev, HealthReport) and s.phase == CONFIRMING and s.pending is not None:
        p = s.pending
        if ev.ok:
            return (r(s, phase=IDLE, pending=None, last_result="committed", rollback_reason=None,
                      message=f"{p.version} committed"),
                    [MarkGood(), RaiseFloor(p.epoch, p.version), Record(p.version, "committed"), Persist(), Publish()])
        return r(s, pending=r(p, reason=ev.unhealthy)), []

    return s, []


def _roll_back(s: State, why: str) -> tuple[State, list[Action]]:
    p = s.pending
    assert p is not None
    reason = f"{why}: {p.reason}" if p.reason else why
    p2 = msgspec.structs.replace(p, rollback=True, reason=reason)
    return (msgspec.structs.replace(s, phase=REBOOTING, pending=p2, last_result="rolled-back", rollback_reason=reason,
                                    message=f"{p.version} rolled back: {reason}"),
            [MarkBad(), Record(p.version, "rolled-back", reason), Persist(), Publish(), Reboot()])


def in_window(window: str, minute_of_day: int) -> bool:
    """``"02:00-05:00"`` (local time, may wrap midnight); empty means always. Pure; validated by config."""
    if not window:
        return True
    start, end = (parse_hhmm(x) for x in window.split("-"))
    if start <= end:
        return start <= minute_of_day < end
    return minute_of_day >= start or minute_of_day < end


def parse_hhmm(text: str) -> int:
    """``"02:30"`` → 150. Raises: ValueError naming the input."""
    h, sep, mnt = text.strip().partition(":")
    if not sep or not (h.isdigit() and mnt.isdigit()) or not (0 <= int(h) <= 23 and 0 <= int(mnt) <= 59):
        raise ValueError(f"{text!r} is not HH:MM (00:00-23:59)")
    return int(h) * 60 + int(mnt)

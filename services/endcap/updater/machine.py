"""The update state machine (pure): events in, typed actions out; no I/O, no clock reads.

idle → checking → downloading → verifying → installing → rebooting → (reboot) → confirming →
committed (MarkGood, then RaiseFloor) or rolled back (MarkBad, Reboot) → idle; any step may end in ``failed``
(which behaves like idle for the next check). What must survive a reboot is ``Pending`` (version,
epoch, the slot we came from, the boot in which the reboot was asked for, the confirm deadline, why we roll
back); the shell persists the whole ``State`` whenever an action list contains ``Persist``, before running the
actions after it. Where an action list has a ``Persist``, it comes first.

Reboots are proven, not assumed: ``Started`` carries the kernel's boot id; a pending change whose reboot
was asked for in the same boot (the reboot command failed, or the updater restarted before the machine
went down) goes back to waiting for the reboot. Only a different boot id on the old slot counts as "the
new slot did not come up". A failed reboot command (``RebootFailed``) or RAUC mark (``MarkDone`` not ok)
is retried with back-off; a mark-good that keeps failing ends in the confirm timeout's rollback.

Invariants: a new slot is marked good (MarkGood) only in ``confirming`` after a healthy report on a slot
other than the one we came from, RaiseFloor only after RAUC confirmed that mark; the only other MarkGood is at
start on the slot that is already committed (no update pending, or a rollback landed on it), which clears
the try flag GRUB sets on every boot (what rauc-mark-good would do); a Reboot is emitted only inside the reboot
window (or at once when no window is configured) or to roll back; a refused/failed step never leaves
``pending`` set.
"""
from __future__ import annotations

from typing import Optional, Union

import msgspec

IDLE, CHECKING, DOWNLOADING, VERIFYING, INSTALLING, REBOOTING, CONFIRMING, FAILED = (
    "idle", "checking", "downloading", "verifying", "installing", "rebooting", "confirming", "failed")

RETRY_BASE_S = 30.0  # first retry of a failed reboot command or RAUC mark
RETRY_CAP_S = 1800.0


class Pending(msgspec.Struct, frozen=True, kw_only=True):
    version: str
    epoch: int
    from_slot: str  # bootname running when the install was made
    rollback: bool = False  # MarkBad was issued: the next boot must be from_slot
    rebooted: bool = False  # a Reboot was issued for this pending change (and has not failed)
    reboot_boot_id: str = ""  # boot id of the boot in which that Reboot was issued ("" unknown)
    deadline: Optional[float] = None  # confirm deadline (wall clock, seconds)
    reason: str = ""  # rollback reason
    attempts: int = 0  # failed reboot commands / RAUC marks in a row
    retry_at: float = 0.0  # no new reboot/mark try before this (wall clock)


class State(msgspec.Struct, frozen=True, kw_only=True):
    phase: str = IDLE
    booted: Optional[str] = None
    boot_id: str = ""  # the kernel's boot id at the last Started ("" unknown)
    target: Optional[str] = None  # version being fetched/verified/installed (None: a local bundle not yet read)
    target_epoch: int = 0
    pending: Optional[Pending] = None
    message: str = ""
    last_result: Optional[str] = None
    rollback_reason: Optional[str] = None


# --- events -----------------------------------------------------------------------------------

class Started(msgspec.Struct, frozen=True):
    booted: str
    now: float
    boot_id: str = ""  # /proc/sys/kernel/random/boot_id; "" when unknown


class CheckNow(msgspec.Struct, frozen=True):
    pass


class Offered(msgspec.Struct, frozen=True):
    version: Optional[str]  # None: nothing newer for this device
    epoch: int = 0
    note: str = ""  # with None: why nothing is taken (default message "up to date")


class LocalBundle(msgspec.Struct, frozen=True):
    path: str  # a bundle handed over on this device; version and epoch come from RAUC's verification


class Fetched(msgspec.Struct, frozen=True):
    path: str


class Verified(msgspec.Struct, frozen=True):
    path: str
    version: str  # from the signature-checked manifest
    epoch: int


class Installed(msgspec.Struct, frozen=True):
    epoch: Optional[int] = None  # the epoch RAUC recorded for the written slot (signed manifest), if read


class StepFailed(msgspec.Struct, frozen=True):
    reason: str
    refused: bool = False  # an integrity refusal (never retried for this version) vs a transient failure
    version: Optional[str] = None  # the bundle's version when known (a local bundle's, once RAUC read it)


class RebootFailed(msgspec.Struct, frozen=True):
    reason: str
    now: float


class MarkDone(msgspec.Struct, frozen=True):
    state: str  # "good" | "bad"
    ok: bool
    now: float
    reason: str = ""


class Tick(msgspec.Struct, frozen=True):
    now: float
    in_window: bool


class HealthReport(msgspec.Struct, frozen=True):
    ok: bool
    unhealthy: str = ""  # "svc: status line; ..." of the services not healthy
    now: float = 0.0


Event = Union[Started, CheckNow, Offered, LocalBundle, Fetched, Verified, Installed, StepFailed, RebootFailed,
              MarkDone, Tick, HealthReport]


# --- actions ----------------------------------------------------------------------------------

class Poll(msgspec.Struct, frozen=True):
    pass


class Download(msgspec.Struct, frozen=True):
    version: str


class Verify(msgspec.Struct, frozen=True):
    path: str
    version: Optional[str]  # what the offer named (None: a local bundle, take what the signed manifest says)
    epoch: Optional[int]


class Install(msgspec.Struct, frozen=True):
    path: str


class Reboot(msgspec.Struct, frozen=True):
    pass


class MarkGood(msgspec.Struct, frozen=True):
    pass


class MarkBad(msgspec.Struct, frozen=True):
    slot: str = "booted"  # RAUC's slot identifier: "booted", or "other" (the slot that did not come up)


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


def retry_delay(attempts: int) -> float:
    """Back-off before try ``attempts + 1`` of a reboot or mark: 30 s, 60 s, … capped at 30 min."""
    return min(RETRY_BASE_S * (2 ** min(max(attempts - 1, 0), 16)), RETRY_CAP_S)


def _started(s: State, ev: Started, confirm_timeout_s: float) -> tuple[State, list[Action]]:
    r = msgspec.structs.replace
    p = s.pending
    base = r(s, booted=ev.booted, boot_id=ev.boot_id)
    if p is None:
        # A boot of the committed slot: GRUB marked it "being tried" (RAUC's A/B script); clear that, as
        # rauc-mark-good would, or the next reboot falls over to the other slot.
        return r(base, phase=IDLE, target=None), [Persist(), MarkGood(), Publish()]
    if p.rebooted and p.reboot_boot_id and ev.boot_id == p.reboot_boot_id:
        # Same boot as the one that asked for the reboot: it never happened. Ask again (now, or in the window).
        p2 = r(p, rebooted=False, retry_at=0.0)
        return (r(base, phase=REBOOTING, pending=p2,
                  message=(f"{p.version} rolling back: reboot pending" if p.rollback
                           else f"{p.version} installed; reboot pending (the last reboot did not happen)")),
                [Persist(), Publish()])
    if p.rollback:
        if ev.booted == p.from_slot:
            why = p.reason or "rolled back"
            return r(base, phase=IDLE, pending=None, target=None, last_result="rolled-back", rollback_reason=why,
                     message=f"{p.version} rolled back: {why}"), [Persist(), MarkGood(), Publish()]
        # Came up on the new slot again although it was marked bad: mark it bad again and reboot.
        return (r(base, phase=REBOOTING, pending=r(p, rebooted=False, retry_at=0.0),
                  message=f"{p.version} rolling back: {p.reason}"), [Persist(), Publish(), MarkBad()])
    if p.rebooted and ev.booted == p.from_slot:
        why = f"slot {p.from_slot} booted again: the new slot did not come up"
        return (r(base, phase=IDLE, pending=None, target=None, last_result="rolled-back", rollback_reason=why,
                  message=f"{p.version} rolled back: {why}"),
                # the new slot is marked bad too: its try flag alone keeps GRUB off it only until every
                # slot has been tried once more
                [Persist(), Record(p.version, "rolled-back", why), MarkGood(), MarkBad("other"), Publish()])
    if ev.booted != p.from_slot:
        keep = (s.phase == CONFIRMING and p.deadline is not None and s.booted == ev.booted
                and s.boot_id == ev.boot_id)  # the updater restarted within the same boot: same deadline
        p2 = r(p, rebooted=True, deadline=p.deadline if keep else ev.now + confirm_timeout_s)
        return r(base, phase=CONFIRMING, pending=p2,
                 message=f"{p.version} booted; waiting for services to report healthy"), [Persist(), Publish()]
    return r(base, phase=REBOOTING, message=f"{p.version} installed; reboot pending"), [Persist(), Publish()]


def step(s: State, ev: Event, *, confirm_timeout_s: float) -> tuple[State, list[Action]]:
    """One transition. Events that do not apply in the current phase change nothing."""
    r = msgspec.structs.replace
    if isinstance(ev, Started):
        return _started(s, ev, confirm_timeout_s)

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
        return (r(s, phase=VERIFYING, target=None, target_epoch=0, message="verifying the uploaded bundle"),
                [Verify(ev.path, None, None), Publish()])

    if isinstance(ev, Fetched) and s.phase == DOWNLOADING and s.target is not None:
        return (r(s, phase=VERIFYING, message=f"verifying {s.target}"),
                [Verify(ev.path, s.target, s.target_epoch), Publish()])

    if isinstance(ev, Verified) and s.phase == VERIFYING:
        return (r(s, phase=INSTALLING, target=ev.version, target_epoch=ev.epoch, message=f"installing {ev.version}"),
                [Persist(), Install(ev.path), Publish()])

    if isinstance(ev, Installed) and s.phase == INSTALLING and s.target is not None and s.booted is not None:
        epoch = s.target_epoch if ev.epoch is None else ev.epoch
        p = Pending(version=s.target, epoch=epoch, from_slot=s.booted)
        return (r(s, phase=REBOOTING, pending=p, target=None, target_epoch=epoch, last_result="installed",
                  message=f"{s.target} installed; reboot pending"),
                [Persist(), Record(s.target, "installed"), Publish()])

    if isinstance(ev, StepFailed) and s.phase in (CHECKING, DOWNLOADING, VERIFYING, INSTALLING):
        outcome = "refused" if ev.refused else "failed"
        version = ev.version or s.target or ("?" if s.phase in (VERIFYING, INSTALLING) else None)
        acts: list[Action] = [Record(version, outcome, ev.reason)] if version else []
        return (r(s, phase=FAILED, target=None, last_result=outcome, message=ev.reason),
                [Persist(), *acts, Publish()])

    if isinstance(ev, RebootFailed) and s.phase == REBOOTING and s.pending is not None:
        p = s.pending
        n = p.attempts + 1
        p2 = r(p, rebooted=False, attempts=n, retry_at=ev.now + retry_delay(n))
        return (r(s, pending=p2, message=f"reboot failed ({ev.reason}); retry {n} in {retry_delay(n):.0f} s"),
                [Persist(), Publish()])

    if isinstance(ev, MarkDone) and s.pending is not None:
        p = s.pending
        if ev.state == "good" and s.phase == CONFIRMING:
            if ev.ok and s.booted != p.from_slot:
                return (r(s, phase=IDLE, pending=None, last_result="committed", rollback_reason=None,
                          message=f"{p.version} committed"),
                        [Persist(), Record(p.version, "committed"), Publish(), RaiseFloor(p.epoch, p.version)])
            if not ev.ok:
                n = p.attempts + 1
                p2 = r(p, attempts=n, retry_at=ev.now + retry_delay(n), reason=f"mark good failed: {ev.reason}")
                return (r(s, pending=p2, message=f"{p.version}: mark good failed ({ev.reason}); retry {n} in "
                                                 f"{retry_delay(n):.0f} s"), [Publish()])
        if ev.state == "bad" and s.phase == REBOOTING and p.rollback and not ev.ok:
            # Reboot anyway: the boot counter of an unconfirmed slot falls back on its own.
            return r(s, message=f"{p.version} rolling back: mark bad failed ({ev.reason}); rebooting anyway"), [Publish()]
        return s, []

    if isinstance(ev, Tick) and s.pending is not None:
        p = s.pending
        if (s.phase == REBOOTING and not p.rebooted and (ev.in_window or p.rollback) and ev.now >= p.retry_at):
            return (r(s, pending=r(p, rebooted=True, reboot_boot_id=s.boot_id), message="rebooting"),
                    [Persist(), Reboot()])
        if s.phase == CONFIRMING and p.deadline is not None and ev.now >= p.deadline:
            return _roll_back(s, "services not healthy within the confirm timeout")

    if isinstance(ev, HealthReport) and s.phase == CONFIRMING and s.pending is not None:
        p = s.pending
        if ev.ok:
            if ev.now < p.retry_at or s.booted == p.from_slot:
                return s, []
            return s, [MarkGood()]
        if p.reason != ev.unhealthy:
            return r(s, pending=r(p, reason=ev.unhealthy)), []
        return s, []

    return s, []


def _roll_back(s: State, why: str) -> tuple[State, list[Action]]:
    """Mark the new slot bad and wait for the reboot (the next Tick asks for it, ignoring the window)."""
    p = s.pending
    assert p is not None
    reason = f"{why}: {p.reason}" if p.reason else why
    p2 = msgspec.structs.replace(p, rollback=True, rebooted=False, reason=reason, attempts=0, retry_at=0.0)
    return (msgspec.structs.replace(s, phase=REBOOTING, pending=p2, last_result="rolled-back", rollback_reason=reason,
                                    message=f"{p.version} rolled back: {reason}"),
            [Persist(), Record(p.version, "rolled-back", reason), Publish(), MarkBad()])


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

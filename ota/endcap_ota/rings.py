"""Rollout rings as pure data: which version each ring points to, and the rules for changing it.

Each ring keeps, per ``compatible``, a *history* (versions it pointed to, oldest first; the last one is the
current pointer) and the versions *halted* in it. Rules (no I/O, no clock):

- publish: a version enters ``canary`` (or the named ring); it must be newer than the ring's current one.
- promote: ``canary -> pilot -> fleet``; the version must be in the history of the ring directly below and not
  halted there, and newer than the target ring's current version.
- halt: the current version is moved to *halted*; the pointer falls back to the previous history entry, or to
  none. Devices that already installed the halted version keep it (they never downgrade): a halt stops the
  rollout, a newer release fixes forward.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from .errors import RepoError
from .version import parse_version

RINGS = ("canary", "pilot", "fleet")


@dataclass
class RingState:
    history: list[str] = field(default_factory=list)
    halted: list[str] = field(default_factory=list)

    @property
    def current(self) -> str | None:
        return self.history[-1] if self.history else None

    def to_json(self) -> dict:
        return {"history": list(self.history), "halted": list(self.halted)}

    @classmethod
    def from_json(cls, obj: dict) -> "RingState":
        return cls(list(obj.get("history", [])), list(obj.get("halted", [])))


def check_ring(ring: str) -> str:
    if ring not in RINGS:
        raise RepoError(f"ring {ring!r}: must be one of {', '.join(RINGS)}", code="ring")
    return ring


def lower_ring(ring: str) -> str | None:
    """The ring a version must pass through before ``ring`` (None for canary)."""
    i = RINGS.index(check_ring(ring))
    return RINGS[i - 1] if i else None


def _newer_than_current(state: RingState, version: str, ring: str) -> None:
    cur = state.current
    if cur is not None and parse_version(version) <= parse_version(cur):
        raise RepoError(f"version {version}: not newer than {ring}'s current {cur}", code="downgrade")


def publish(state: RingState, version: str, ring: str) -> RingState:
    """Point ``ring`` at ``version`` (first entry of a release). Raises: RepoError."""
    check_ring(ring)
    if version in state.halted:
        raise RepoError(f"version {version}: halted in {ring}; publish a newer version", code="halted")
    _newer_than_current(state, version, ring)
    return RingState(state.history + [version], list(state.halted))


def promote(lower: RingState, target: RingState, version: str, to: str) -> RingState:
    """New state of ring ``to`` after promoting ``version`` from the ring below. Raises: RepoError."""
    below = lower_ring(to)
    if below is None:
        raise RepoError(f"ring {to!r}: nothing is promoted into canary; publish to it", code="ring")
    if version not in lower.history or version in lower.halted:
        raise RepoError(f"version {version}: not in {below} (promote through {' -> '.join(RINGS)})", code="order")
    if version in target.halted:
        raise RepoError(f"version {version}: halted in {to}", code="halted")
    if target.current == version:
        return RingState(list(target.history), list(target.halted))  # idempotent
    _newer_than_current(target, version, to)
    return RingState(target.history + [version], list(target.halted))


def halt(state: RingState, ring: str) -> RingState:
    """Stop the current version of ``ring``; the pointer falls back to the previous one or none."""
    if state.current is None:
        raise RepoError(f"ring {ring}: nothing to halt", code="empty")
    halted = state.current
    return RingState([v for v in state.history if v != halted], state.halted + [halted])

"""Health: has the work flowed recently? Pure state plus a small publisher.

A service calls ``success()`` each time real work completes (a poll returned, a frame was processed)
and ``failure(err)`` when it fails. ``ok`` is true only if the last success is newer than
``stale_after_s`` and newer than the last error. The service publishes the snapshot on
``<svc>.health`` every ``interval_s`` and on every change of ``ok``.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from . import messages as m
from .errors import EndcapError


@dataclass
class HealthState:
    service: str
    stale_after_s: float
    last_success: float | None = None
    last_error: m.ErrorInfo | None = None
    last_error_at: float | None = None
    counters: dict[str, float] = field(default_factory=dict)

    def success(self, now: float) -> None:
        self.last_success = now

    def failure(self, err: BaseException, now: float) -> None:
        code = err.code if isinstance(err, EndcapError) else type(err).__name__
        self.last_error = m.ErrorInfo(code, str(err))
        self.last_error_at = now

    def count(self, name: str, n: float = 1) -> None:
        self.counters[name] = self.counters.get(name, 0) + n

    def set(self, name: str, value: float) -> None:
        self.counters[name] = value

    def is_ok(self, now: float) -> bool:
        if self.last_success is None or now - self.last_success > self.stale_after_s:
            return False
        return self.last_error_at is None or self.last_success >= self.last_error_at

    def snapshot(self, now: float) -> m.Health:
        ok = self.is_ok(now)
        if ok:
            status = "working"
        elif self.last_success is None and self.last_error is None:
            status = "starting: no work done yet"
        elif self.last_error is not None and (self.last_success is None or self.last_error_at >= self.last_success):
            status = f"failing: {self.last_error.message}"
        else:
            status = f"stalled: no success for {now - (self.last_success or now):.0f} s"
        return m.Health(self.service, ok, status, self.last_success, self.last_error, dict(self.counters))


class HealthPublisher:
    """Publishes a HealthState on ``<svc>.health`` periodically and whenever ``ok`` flips."""

    def __init__(self, state: HealthState, publisher, interval_s: float = 2.0) -> None:
        self.state = state
        self._pub = publisher
        self._interval = interval_s
        self._next_at = 0.0
        self._last_ok: bool | None = None

    def maybe_publish(self, now: float) -> None:
        ok = self.state.is_ok(now)
        if now >= self._next_at or ok != self._last_ok:
            self._pub.publish(f"{self.state.service}.health", self.state.snapshot(now))
            self._next_at = now + self._interval
            self._last_ok = ok

"""The health gate's input: the latest ``<svc>.health`` of each configured service, from the bus.

``HealthGate.report(now)`` says whether every service's last message is ok and fresh; the summary names
the services that are not, with their own status line (that line becomes the rollback reason).
"""
from __future__ import annotations

from typing import Optional

from ..core import messages as m
from ..core.bus import Subscriber
from ..core.errors import BusError
from ..core.paths import Paths


class HealthGate:
    def __init__(self, paths: Paths, services: list[str], *, fresh_s: float = 30.0) -> None:
        self.services = list(services)
        self.fresh_s = fresh_s
        self.latest: dict[str, tuple[float, m.Health]] = {}
        self._sub: Optional[Subscriber] = None
        if self.services:
            self._sub = Subscriber([paths.pub_address(s) for s in self.services],
                                   [f"{s}.health" for s in self.services], "updater", recv_timeout_ms=10)

    def drain(self, now: float) -> None:
        """Take every message waiting now (non-blocking beyond 10 ms)."""
        if self._sub is None:
            return
        while True:
            try:
                msg = self._sub.recv()
            except BusError:
                return
            if isinstance(msg.body, m.Health) and msg.body.service in self.services:
                self.latest[msg.body.service] = (now, msg.body)

    def report(self, now: float) -> tuple[bool, str]:
        bad = []
        for s in self.services:
            seen = self.latest.get(s)
            if seen is None:
                bad.append(f"{s}: no health message")
            elif now - seen[0] > self.fresh_s:
                bad.append(f"{s}: health silent for {now - seen[0]:.0f} s")
            elif not seen[1].ok:
                bad.append(f"{s}: {seen[1].status}")
        return not bad, "; ".join(bad)

    def close(self) -> None:
        if self._sub is not None:
            self._sub.close()

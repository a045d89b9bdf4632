"""What the pages show, read over the bus: health and update status by subscription, the rest by RPC.

``Feeds`` keeps the newest ``<svc>.health`` of every configured service and the newest
``updater.status`` (a background thread; pub/sub is lossy and each message supersedes the last).
``Bus.call`` asks one service one question with a timeout and turns every failure into a ``Failure``
with a plain-words reason, so a page whose source is down says "not answering", never a 500.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any, Optional

from ..core import messages as m
from ..core.bus import RpcClient, Subscriber
from ..core.errors import BusError, BusTimeout, RemoteError
from ..core.paths import Paths

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Failure:
    service: str
    reason: str
    answered: bool = False  # True: the service answered with an error; False: no answer (it may have acted)

    def __bool__(self) -> bool:
        return False


@dataclass(frozen=True)
class Seen:
    body: Any
    received_at: float


class Feeds:
    def __init__(self, paths: Paths, services: list[str]) -> None:
        self.paths, self.services = paths, list(services)
        self.health: dict[str, Seen] = {}
        self.update: Optional[Seen] = None
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    def start(self) -> "Feeds":
        self._thread = threading.Thread(target=self._run, name="maint-feeds", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        svcs = list(dict.fromkeys(self.services + ["updater"]))
        topics = [f"{s}.health" for s in svcs] + ["updater.status"]
        with Subscriber([self.paths.pub_address(s) for s in svcs], topics, "maint", recv_timeout_ms=300) as sub:
            while not self._stop.is_set():
                try:
                    msg = sub.recv()
                except BusTimeout:
                    continue
                except BusError as e:
                    log.warning("health feed: %s", e)
                    continue
                seen = Seen(msg.body, time.time())
                if msg.topic == "updater.status":
                    self.update = seen
                else:
                    self.health[msg.topic[: -len(".health")]] = seen


class Bus:
    def __init__(self, paths: Paths, timeout_ms: int) -> None:
        self.paths, self.timeout_ms = paths, timeout_ms

    def call(self, service: str, method: str, params: Any, result_type: type, *, timeout_ms: Optional[int] = None) -> Any:
        """The reply, or a ``Failure`` saying in plain words why there is none."""
        try:
            with RpcClient(self.paths.rpc_address(service), "maint", timeout_ms=timeout_ms or self.timeout_ms) as c:
                return c.call(method, params, result_type)
        except BusTimeout:
            return Failure(service, f"{service} is not answering")
        except RemoteError as e:
            return Failure(service, f"{service} refused: {e.message} [{e.code}]", answered=True)
        except BusError as e:
            return Failure(service, f"{service} is not answering ({e.message})")


EMPTY = m.Empty()

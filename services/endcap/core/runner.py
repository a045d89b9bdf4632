"""Runs one service in this process: signals, exit codes, sd_notify, and the one catch-all.

A service is a function ``main(ctx) -> None`` that loops until ``ctx.stop`` is set and calls
``ctx.alive()`` once per loop (watchdog). The runner turns SIGTERM/SIGINT into ``ctx.stop``,
reports READY when the service says so, and maps failures to exit codes so systemd restarts the
service (``Restart=on-failure``). There is no supervisor in Python on the device.

Exit codes: 0 clean stop, 1 failure, 78 (EX_CONFIG) a bad config, every problem printed first: units set
``RestartPreventExitStatus=78`` so systemd does not restart-loop on a config only a person can fix.
"""
from __future__ import annotations

import logging
import signal
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from . import logging as endcap_logging
from .errors import ConfigError, EndcapError
from .paths import Paths
from .systemd import Notifier

log = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_CONFIG = 78  # sysexits.h EX_CONFIG


@dataclass
class ServiceContext:
    name: str
    paths: Paths
    config: Any  # the service's own config section (a typed struct)
    stop: threading.Event = field(default_factory=threading.Event)
    notifier: Notifier = field(default_factory=Notifier)
    _next_ping: float = 0.0

    def ready(self, status: str = "") -> None:
        log.info("%s ready%s", self.name, f": {status}" if status else "")
        self.notifier.ready(status)

    def alive(self) -> None:
        interval = self.notifier.watchdog_interval_s
        if interval is None:
            return
        now = time.monotonic()
        if now >= self._next_ping:
            self.notifier.watchdog()
            self._next_ping = now + interval

    def state_dir(self) -> Any:
        d = self.paths.service_state(self.name)
        d.mkdir(parents=True, exist_ok=True)
        return d


def run_service(ctx: ServiceContext, main: Callable[[ServiceContext], None], *, log_level: str = "INFO") -> int:
    """Run ``main`` until it returns or a signal stops it. Returns the process exit code."""
    endcap_logging.configure(ctx.name, log_level)

    def _stop(signum: int, _frame: object) -> None:
        log.info("%s stopping on %s", ctx.name, signal.Signals(signum).name)
        ctx.stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    try:
        ctx.paths.ensure()
        main(ctx)
    except ConfigError as e:
        for p in e.problems:
            log.error("config: %s", p)
        return EXIT_CONFIG
    except EndcapError as e:
        log.error("%s failed: [%s] %s", ctx.name, e.code, e)
        return EXIT_FAILURE
    except Exception:  # the one catch-all: log it, exit non-zero, let systemd restart us
        log.exception("%s crashed", ctx.name)
        return EXIT_FAILURE
    finally:
        ctx.notifier.stopping()
    return EXIT_OK

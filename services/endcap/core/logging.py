"""Logging setup, called only by the runner and the CLI (never at import time).

Logs go to stderr, which systemd hands to journald; the format carries no timestamp under
journald (it adds its own) and one otherwise.
"""
from __future__ import annotations

import logging
import os
import sys


def configure(service: str, level: str = "INFO") -> None:
    under_journald = bool(os.environ.get("JOURNAL_STREAM"))
    fmt = "%(name)s: %(message)s" if under_journald else "%(asctime)s %(levelname)s [" + service + "] %(name)s: %(message)s"
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(fmt))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())

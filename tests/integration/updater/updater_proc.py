"""``python -m tests.integration.updater.updater_proc ROOT CONFIG.json``: the updater as a process.

What ``endcap service updater`` does once the lead registers the service in ``gateway.SERVICES``:
``run_service`` (signals, sd_notify, exit codes) around ``endcap.updater.service.main``.
"""
from __future__ import annotations

import sys
from pathlib import Path

import msgspec

from endcap.core.paths import Paths
from endcap.core.runner import ServiceContext, run_service
from endcap.updater.config import UpdaterConfig
from endcap.updater.service import main

if __name__ == "__main__":
    root, cfg_file = Path(sys.argv[1]), Path(sys.argv[2])
    cfg = msgspec.json.decode(cfg_file.read_bytes(), type=UpdaterConfig)
    sys.exit(run_service(ServiceContext("updater", Paths.under(root), cfg), main, log_level="INFO"))

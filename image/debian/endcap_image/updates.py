"""Driving a dev-image guest's updater from the host, as the maintenance page does: hand it a bundle
(``install_file`` over the bus) and follow ``updater.status`` until it says what we wait for.

Both run the image's own Python in the guest (``provision.py_command``) and print one JSON line the host
parses; the waiter blocks on the bus subscription (the updater publishes on every change and every
``status_interval_s``), never on a sleep.
"""
from __future__ import annotations

import json
import re

from .provision import py_command

INSTALL_PY = """
import json, msgspec
from endcap.core import messages as m
from endcap.core.bus import RpcClient
from endcap.core.paths import Paths
with RpcClient(Paths.under("/").rpc_address("updater"), "system-test", timeout_ms=30_000) as rpc:
    st = rpc.call("install_file", m.InstallBundleRequest(PATH), m.UpdateStatus)
print("@@STATUS " + json.dumps(msgspec.to_builtins(st)))
"""

WAIT_PY = """
import json, time, msgspec
from endcap.core.bus import Subscriber
from endcap.core.errors import BusTimeout
from endcap.core.paths import Paths
want, deadline, last = WANT, time.monotonic() + TIMEOUT_S, None
def matches(st):
    for k, v in want.items():
        if k == "history_has":
            if not any(r["version"] == v[0] and r["outcome"] == v[1] for r in st["history"]): return False
        elif st.get(k) != v: return False
    return True
with Subscriber([Paths.under("/").pub_address("updater")], ["updater.status"], "system-test",
                recv_timeout_ms=5000) as sub:
    while time.monotonic() < deadline:
        try:
            last = msgspec.to_builtins(sub.recv().body)
        except BusTimeout:
            continue
        if matches(last):
            print("@@STATUS " + json.dumps(last)); raise SystemExit(0)
print("@@STATUS " + json.dumps(last)); raise SystemExit(3)
"""

_STATUS = re.compile(r"^@@STATUS (.*)$", re.M)


def _status(out: str) -> dict | None:
    found = _STATUS.findall(out)
    return json.loads(found[-1]) if found else None


def install_bundle(guest, path: str) -> dict:
    """Hand the bundle at ``path`` (in the guest) to the updater; its status right after it took it."""
    out = guest.check(py_command(INSTALL_PY.replace("PATH", repr(path))), timeout_s=120)
    st = _status(out)
    if st is None:
        raise AssertionError(f"install_file gave no status:\n{out}")
    return st


def wait_status(guest, timeout_s: float, **want) -> dict:
    """Block until ``updater.status`` matches every ``want`` field (``history_has=(version, outcome)`` or
    plain equality); the matching status. AssertionError with the last
    status seen after ``timeout_s``."""
    src = WAIT_PY.replace("WANT", repr(want)).replace("TIMEOUT_S", repr(float(timeout_s)))
    r = guest.sh(py_command(src), timeout_s=timeout_s + 60)
    st = _status(r.out)
    if r.rc != 0:
        raise AssertionError(f"updater.status never matched {want} within {timeout_s} s; last: {st}\n{r.out[-2000:]}")
    return st

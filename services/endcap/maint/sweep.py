"""Sweep of the upload folder at maint start: leftovers of uploads that never finished or were never installed.

``receive`` (upload.py) streams into ``bundle-<32 hex>.part`` and renames it to ``bundle-<32 hex>.raucb``
when complete; the updater deletes a finished upload once it installed it. A kill or power loss mid-upload
leaves the ``.part`` forever, a lost hand-over leaves the ``.raucb``. The decision is pure
(:func:`plan_sweep`): every ``.part`` goes (maint is the only writer and is just starting, so none is
being written); a finished upload goes only when it is older than ``max_age_s`` and the updater answered
its ``status``: when its state is busy (not ``idle``/``failed``) the newest finished upload is kept
whatever its age, since that may be the one it is installing; when it does not answer, every finished upload
is kept. Files with other names are never touched.
"""
from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from ..core import messages as m
from ..core.bus import RpcClient
from ..core.errors import EndcapError
from ..core.paths import Paths

log = logging.getLogger(__name__)

UPLOAD_DIR = "uploads"  # under the maint state dir (Maint.upload_dir)
UPLOAD_NAME = re.compile(r"^bundle-[0-9a-f]{32}\.(part|raucb)$")
IDLE_STATES = ("idle", "failed")
MAX_AGE_S = 3600.0  # an accepted upload is taken by the updater within seconds; an hour is plenty


@dataclass(frozen=True)
class Entry:
    """One regular file of the upload folder."""

    name: str
    size: int
    mtime: float


@dataclass(frozen=True)
class Removal:
    name: str
    size: int
    reason: str


def plan_sweep(entries: list[Entry], now: float, updater_state: Optional[str], *,
               max_age_s: float = MAX_AGE_S) -> list[Removal]:
    """Which files to delete, in name order. ``updater_state`` is the updater's ``status`` state, or None
    when it did not answer."""
    if max_age_s < 0:
        raise EndcapError(f"sweep max_age_s {max_age_s}: must be >= 0", code="input")
    ours = [e for e in entries if UPLOAD_NAME.match(e.name)]
    out = [Removal(e.name, e.size, "partial upload") for e in ours if e.name.endswith(".part")]
    finished = sorted((e for e in ours if e.name.endswith(".raucb")), key=lambda e: (e.mtime, e.name))
    if updater_state is not None:
        if updater_state not in IDLE_STATES and finished:
            finished = finished[:-1]  # the newest may be the bundle being installed right now
        out += [Removal(e.name, e.size, f"finished upload {now - e.mtime:.0f} s old, not installing")
                for e in finished if now - e.mtime > max_age_s]
    return sorted(out, key=lambda r: r.name)


def list_uploads(directory: Path) -> list[Entry]:
    """Regular files (symlinks not followed) of ``directory``; empty when it does not exist."""
    try:
        it = os.scandir(directory)
    except FileNotFoundError:
        return []
    with it:
        out = []
        for d in it:
            if d.is_file(follow_symlinks=False):
                st = d.stat(follow_symlinks=False)
                out.append(Entry(d.name, st.st_size, st.st_mtime))
        return out


def updater_state(paths: Paths, timeout_ms: int = 2000) -> Optional[str]:
    """The updater's current state from its ``status`` RPC, or None when it does not answer usefully."""
    try:
        with RpcClient(paths.rpc_address("updater"), "maint", timeout_ms=timeout_ms) as c:
            return c.call("status", m.Empty(), m.UpdateStatus).state
    except EndcapError as e:  # BusError, BusTimeout, RemoteError, a bad reply: all mean "unknown"
        log.info("upload sweep: updater status unknown (%s); keeping finished uploads", e)
        return None


def sweep_uploads(directory: Path, now: float, state: Optional[str], *, max_age_s: float = MAX_AGE_S) -> list[Removal]:
    """Delete what :func:`plan_sweep` names for ``directory`` now; return what was removed."""
    return remove(directory, plan_sweep(list_uploads(directory), now, state, max_age_s=max_age_s))


def remove(directory: Path, plan: list[Removal]) -> list[Removal]:
    """Delete the planned files, logging each; a file already gone is skipped, one that will not go is logged."""
    removed = []
    for r in plan:
        try:
            (directory / r.name).unlink()
        except FileNotFoundError:
            continue
        except OSError as e:
            log.warning("upload sweep: %s not removed: %s", directory / r.name, e)
            continue
        log.info("upload sweep: removed %s (%s, %d bytes)", directory / r.name, r.reason, r.size)
        removed.append(r)
    return removed


def sweep_at_start(directory: Path, paths: Paths, now: float, *, timeout_ms: int = 2000,
                   max_age_s: float = MAX_AGE_S) -> list[Removal]:
    """maint's start-up sweep; asks the updater only when there is a finished upload to decide on, and never
    fails the start (the page is how a broken device gets fixed)."""
    try:
        entries = list_uploads(directory)
        finished = any(UPLOAD_NAME.match(e.name) and e.name.endswith(".raucb") for e in entries)
        state = updater_state(paths, timeout_ms) if finished else None
        return remove(directory, plan_sweep(entries, now, state, max_age_s=max_age_s))
    except (OSError, EndcapError) as e:
        log.warning("upload sweep of %s skipped: %s", directory, e)
        return []

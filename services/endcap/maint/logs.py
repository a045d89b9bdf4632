"""Logs from journald (``journalctl -o json``) with filters, and the redacted diagnostic archive.

Filters are validated before anything runs (``LogQuery.parse``: unit from the allowlist, priority 0-7,
``since`` as a relative span or an ISO date, text up to 200 characters); journalctl gets an argument
list, never a shell line. Every message shown or archived passes through ``redact``.
"""
from __future__ import annotations

import io
import json
import re
import subprocess
import tarfile
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Optional

from ..core.errors import EndcapError
from .redact import redact

PRIORITIES = ["emerg", "alert", "crit", "err", "warning", "notice", "info", "debug"]
_SINCE_REL = re.compile(r"^(\d{1,5})(s|m|h|d)$")
_SINCE_ABS = re.compile(r"^\d{4}-\d{2}-\d{2}([ T]\d{2}:\d{2}(:\d{2})?)?$")
DIAG_NAME = re.compile(r"^diag-\d{8}T\d{6}Z\.tar\.gz$")


class BadInput(EndcapError):
    code = "bad_input"


@dataclass(frozen=True)
class LogQuery:
    unit: str = ""
    priority: Optional[int] = None
    since: str = ""
    text: str = ""
    limit: int = 300

    @classmethod
    def parse(cls, args, units: list[str]) -> "LogQuery":
        """From form/query values; raises BadInput naming the field and the reason."""
        unit = (args.get("unit") or "").strip()
        if unit and unit not in units:
            raise BadInput(f"unit: {unit[:60]!r} is not one of this device's units")
        prio = (args.get("priority") or "").strip()
        priority = None
        if prio:
            if not (prio.isdigit() and 0 <= int(prio) <= 7):
                raise BadInput(f"priority: {prio[:20]!r} is not 0-7")
            priority = int(prio)
        since = (args.get("since") or "").strip()
        if since and not (_SINCE_REL.match(since) or _SINCE_ABS.match(since)):
            raise BadInput(f"since: {since[:40]!r} is not like 30m, 2h, 1d or 2026-01-31 08:00")
        text = args.get("text") or ""
        if len(text) > 200 or not text.isprintable():
            raise BadInput("text: at most 200 printable characters")
        return cls(unit, priority, since, text)

    def argv(self, journalctl: str, directory: str) -> list[str]:
        a = [journalctl, "-o", "json", "--no-pager", "-r", "-n", str(self.limit if not self.text else 5000)]
        if directory:
            a += ["--directory", directory]
        if self.unit:
            a += ["-u", self.unit]
        if self.priority is not None:
            a += ["-p", str(self.priority)]
        if self.since:
            m = _SINCE_REL.match(self.since)
            a += ["--since", f"-{m.group(1)}{ {'s': 's', 'm': 'min', 'h': 'h', 'd': 'd'}[m.group(2)]}" if m else self.since]
        return a


@dataclass(frozen=True)
class Entry:
    time: str
    unit: str
    priority: int
    message: str


def _message(v) -> str:
    if isinstance(v, list):  # journald gives binary-unsafe messages as byte arrays
        return bytes(x for x in v if isinstance(x, int) and 0 <= x < 256).decode("utf-8", "replace")
    return str(v)


def read(q: LogQuery, journalctl: str, directory: str, timeout_s: float = 10.0) -> list[Entry]:
    try:
        out = subprocess.run(q.argv(journalctl, directory), capture_output=True, timeout=timeout_s)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise EndcapError(f"journal: cannot run journalctl: {e}", code="journal") from e
    if out.returncode != 0 and not out.stdout:
        raise EndcapError(f"journal: {out.stderr.decode(errors='replace').strip()[:300]}", code="journal")
    entries = []
    for line in out.stdout.splitlines():
        try:
            e = json.loads(line)
        except ValueError:
            continue
        msg = redact(_message(e.get("MESSAGE", "")))
        if q.text and q.text.lower() not in msg.lower():
            continue
        ts = int(e.get("__REALTIME_TIMESTAMP", "0")) / 1e6
        entries.append(Entry(datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%d %H:%M:%S"),
                             e.get("_SYSTEMD_UNIT") or e.get("SYSLOG_IDENTIFIER") or "",
                             int(e.get("PRIORITY", "6")) if str(e.get("PRIORITY", "6")).isdigit() else 6, msg))
        if len(entries) >= q.limit:
            break
    return entries


def diagnostic_name(now: float) -> str:
    return "diag-" + datetime.fromtimestamp(now, timezone.utc).strftime("%Y%m%dT%H%M%SZ") + ".tar.gz"


def diagnostic_path(directory: Path, name: str) -> Path:
    """The archive ``name`` inside ``directory``; BadInput for anything else (traversal, other names)."""
    if not DIAG_NAME.match(name or ""):
        raise BadInput(f"file: {str(name)[:80]!r} is not a diagnostic archive name")
    p = (directory / name).resolve()
    if p.parent != directory.resolve():
        raise BadInput(f"file: {name[:80]!r} is outside the diagnostics folder")
    return p


def write_diagnostics(directory: Path, now: float, *, journal: list[Entry], parts: dict[str, str]) -> Path:
    """A tar.gz with the journal and the given text parts (health, versions, config), all redacted."""
    directory.mkdir(parents=True, exist_ok=True)
    for old in sorted(directory.glob("diag-*.tar.gz"))[:-4]:  # keep the last few
        old.unlink(missing_ok=True)
    path = directory / diagnostic_name(now)
    files = {"journal.txt": "\n".join(f"{e.time} {e.unit} <{e.priority}> {e.message}" for e in reversed(journal))}
    files.update(parts)
    tmp = path.with_suffix(".part")
    with tarfile.open(tmp, "w:gz") as tar:
        for name, text in files.items():
            data = redact(text).encode()
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), int(time.time()), 0o644
            tar.addfile(info, io.BytesIO(data))
    tmp.replace(path)
    return path

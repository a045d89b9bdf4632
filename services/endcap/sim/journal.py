"""Write real journal files for tests and dev runs (no journald needed): ``systemd-journal-remote -o FILE``
fed the journal export format. Debian package ``systemd-journal-remote`` provides the binary."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

CANDIDATES = ("/lib/systemd/systemd-journal-remote", "/usr/lib/systemd/systemd-journal-remote")


def journal_remote() -> str:
    for c in CANDIDATES:
        if Path(c).is_file():
            return c
    found = shutil.which("systemd-journal-remote")
    if found:
        return found
    raise RuntimeError("systemd-journal-remote not found: install the Debian package systemd-journal-remote")


def export_format(entries: list[dict[str, str]], *, boot_id: str = "0123456789abcdef0123456789abcdef") -> bytes:
    """Entries as journal export format; each needs MESSAGE and __REALTIME_TIMESTAMP (µs since the epoch)."""
    out = []
    for i, e in enumerate(entries, 1):
        fields = {"__CURSOR": f"s=1;i={i}", "__MONOTONIC_TIMESTAMP": str(i), "_BOOT_ID": boot_id, **e}
        for k, v in fields.items():
            if "\n" in v:
                raw = v.encode()
                out.append(k.encode() + b"\n" + len(raw).to_bytes(8, "little") + raw + b"\n")
            else:
                out.append(f"{k}={v}\n".encode())
        out.append(b"\n")
    return b"".join(out)


def write_journal(path: str | Path, entries: list[dict[str, str]]) -> Path:
    """A journal file at ``path`` (must end in ``.journal``) holding ``entries``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([journal_remote(), "-o", str(path), "-"], input=export_format(entries), check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=30)
    return path

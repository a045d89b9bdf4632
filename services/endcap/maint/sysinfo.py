"""Host facts for the overview: uptime, disk, temperature, time sync. Missing sources read as None."""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Optional


def uptime_s(proc: Path = Path("/proc/uptime")) -> Optional[float]:
    try:
        return float(proc.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def disk(path: Path) -> Optional[tuple[int, int]]:
    """(free, total) bytes of the filesystem holding ``path``."""
    try:
        u = shutil.disk_usage(path)
    except OSError:
        return None
    return u.free, u.total


def temperature_c(thermal: Path = Path("/sys/class/thermal")) -> Optional[float]:
    """The hottest thermal zone in °C."""
    temps = []
    for z in thermal.glob("thermal_zone*/temp"):
        try:
            temps.append(int(z.read_text().strip()) / 1000)
        except (OSError, ValueError):
            continue
    return max(temps) if temps else None


def time_synced(flag: Path = Path("/run/systemd/timesync/synchronized")) -> Optional[bool]:
    """systemd-timesyncd touches this file once the clock is synchronised; None when timesyncd is absent."""
    if flag.exists():
        return True
    return False if flag.parent.exists() else None


def human_s(s: Optional[float]) -> str:
    if s is None:
        return "unknown"
    s = int(s)
    d, s = divmod(s, 86400)
    h, s = divmod(s, 3600)
    m, s = divmod(s, 60)
    return (f"{d} d " if d else "") + (f"{h} h " if h or d else "") + f"{m} min"

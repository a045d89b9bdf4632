"""Update history and machine state, persisted in the updater's state dir with atomic writes.

``history.json`` keeps the newest ``limit`` records; ``state.json`` is the machine's ``State`` (what must
survive a reboot). A corrupt file is an error naming the file, never silently reset: the state is what
tells us whether a new slot still needs confirming.
"""
from __future__ import annotations

from pathlib import Path

import msgspec

from ..core import messages as m
from ..core.atomic import atomic_write
from ..core.errors import UpdateError
from .machine import State


class Store:
    def __init__(self, directory: Path, limit: int = 50) -> None:
        self.dir = directory
        self.limit = limit
        self.dir.mkdir(parents=True, exist_ok=True)

    def _read(self, name: str, typ: type, default):
        p = self.dir / name
        try:
            return msgspec.json.decode(p.read_bytes(), type=typ)
        except FileNotFoundError:
            return default
        except (OSError, msgspec.DecodeError) as e:
            raise UpdateError(f"{p}: unreadable ({e}); fix or remove it by hand", code="state") from e

    def history(self) -> list[m.UpdateRecord]:
        return self._read("history.json", list[m.UpdateRecord], [])

    def append(self, rec: m.UpdateRecord) -> list[m.UpdateRecord]:
        items = (self.history() + [rec])[-self.limit:]
        atomic_write(self.dir / "history.json", msgspec.json.encode(items))
        return items

    def state(self) -> State:
        return self._read("state.json", State, State())

    def save_state(self, s: State) -> None:
        atomic_write(self.dir / "state.json", msgspec.json.encode(s))

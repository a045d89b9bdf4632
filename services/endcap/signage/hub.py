"""The offers on their way to screens: one bounded ring per display, fanned out to its event streams.

Thread-safe: the bus thread pushes, each SSE stream (one WSGI thread per open page) waits on its
display's condition. Nothing here touches the network; time is passed in (``time.monotonic``).

Event ids are ``<boot>-<seq>``: ``boot`` is fixed per service start and ``seq`` counts up from 1, so
after a restart a page's ``Last-Event-ID`` from the previous instance is recognised as foreign
and the page gets every offer still live instead of nothing (the new ``seq`` starts low again).
Offers supersede each other on a screen, so a stream only ever sends the newest offer it has not
sent yet, and only while it is live: replay (``Last-Event-ID``) after a reconnect gives the newest
offer after that id if it has not expired, and a burst that arrives while a stream is busy is sent as
its last offer. An offer that would be replaced within the same moment is never put on screen, so
proof of play never claims it. A ring holds at most ``ring_size`` offers per display.
"""
from __future__ import annotations

import secrets
import threading
from collections import deque
from dataclasses import dataclass
from typing import Callable, Iterable, Optional

from .playlist import Card


@dataclass(frozen=True)
class Event:
    seq: int
    card: Card
    until: float  # monotonic deadline of the offer

    def event_id(self, boot: str) -> str:
        return f"{boot}-{self.seq}"


def parse_event_id(text: Optional[str]) -> tuple[str, int] | None:
    """``"<boot>-<seq>"`` → (boot, seq); None for anything else (a foreign or garbled id)."""
    if not text or len(text) > 64:
        return None
    boot, sep, seq = text.rpartition("-")
    if not sep or not boot or not seq.isdigit():
        return None
    return boot, int(seq)


def newest_live(events: Iterable[Event], after: int, now: float) -> list[Event]:
    """Pure: ``[the newest event after seq 'after']`` if it is still live, else ``[]``."""
    newest = None
    for e in events:
        if e.seq > after and (newest is None or e.seq > newest.seq):
            newest = e
    return [newest] if newest is not None and newest.until > now else []


def select_replay(events: Iterable[Event], boot: str, last_event_id: Optional[str], now: float) -> list[Event]:
    """Pure: what a (re)connecting page should get, given the last id it saw (None: nothing yet).

    An id from another boot (the service restarted) counts as nothing seen.
    """
    last = parse_event_id(last_event_id)
    after = last[1] if last is not None and last[0] == boot else 0
    return newest_live(events, after, now)


class Hub:
    def __init__(self, display_ids: Iterable[str], ring_size: int, boot: str | None = None) -> None:
        self.boot = boot or secrets.token_hex(4)
        self._rings: dict[str, deque[Event]] = {d: deque(maxlen=ring_size) for d in display_ids}
        self._cond = threading.Condition()
        self._seq = 0
        self._closed = False
        self.streams = 0  # open event streams (health counter)

    def knows(self, display_id: str) -> bool:
        return display_id in self._rings

    def push(self, display_ids: Iterable[str], card: Card, now: float) -> int:
        """Queue ``card`` for these displays until ``now + card.ttl_s``; returns the event's seq."""
        with self._cond:
            self._seq += 1
            ev = Event(self._seq, card, now + card.ttl_s)
            for d in display_ids:
                self._rings[d].append(ev)
            self._cond.notify_all()
            return ev.seq

    def replay(self, display_id: str, last_event_id: Optional[str], now: float) -> tuple[list[Event], int]:
        """Events to replay to a (re)connecting stream, and the cursor to wait from afterwards."""
        with self._cond:
            return select_replay(self._rings[display_id], self.boot, last_event_id, now), self._seq

    def wait(self, display_id: str, cursor: int, timeout_s: float, now: Callable[[], float]) -> tuple[list[Event], int]:
        """Block until an event newer than ``cursor`` exists for the display, the hub closes, or timeout.

        Returns ``[the newest new event]`` if it is live (else ``[]``) and the new cursor.
        """
        with self._cond:
            ring = self._rings[display_id]
            self._cond.wait_for(lambda: self._closed or (bool(ring) and ring[-1].seq > cursor), timeout_s)
            return newest_live(ring, cursor, now()), self._seq

    def card(self, display_id: str, offer_id: str) -> Optional[Card]:
        """The newest card with ``offer_id`` still in the display's ring (None if it has left it)."""
        with self._cond:
            for e in reversed(self._rings.get(display_id, ())):
                if e.card.offer_id == offer_id:
                    return e.card
        return None

    def opened(self) -> None:
        with self._cond:
            self.streams += 1

    def closed_stream(self) -> None:
        with self._cond:
            self.streams -= 1

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Wake every stream so it ends (service shutdown)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

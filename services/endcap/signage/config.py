"""``[signage]``: the displays of this gateway, their loops, the store's dayparts and the web server.

Every field has a default except the displays; unknown keys are errors. Validation never does I/O:
a creative that names a file is checked for a safe name here and for existence when a page is served
(a missing one plays the built-in fallback). Times are local wall-clock ``"HH:MM"`` (``"24:00"`` ends
a day); ``days`` are ``mon``..``sun`` and match the current calendar day; empty means every day.

Example::

    [signage]
    port = 8470

    [[signage.dayparts]]
    name = "breakfast"
    start = "06:00"
    end = "11:00"

    [[signage.loops]]
    id = "aisle"
    items = [
      { id = "coffee", creative = "coffee.html", duration_s = 8, dayparts = ["breakfast"] },
      { id = "bakery", creative = "bakery.png", duration_s = 6 },
    ]

    [[signage.displays]]
    id = "aisle-7"
    zones = ["shelf-7a", "shelf-7b"]
    loop = "aisle"
"""
from __future__ import annotations

import re
from typing import Annotated, Literal, Optional

from msgspec import Meta

from ..core.config import Strict

Day = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
DAYS: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
Positive = Annotated[float, Meta(gt=0)]
Id = Annotated[str, Meta(pattern=r"^[a-z0-9][a-z0-9_-]{0,31}$")]
"""Lower-case letters, digits, ``-`` and ``_``, at most 32: safe in URLs, file names and logs."""

BUILTIN_PREFIX = "builtin:"
BUILTIN_LOOP = "default"
"""The loop every display falls back to; built in, so a screen always has something to play."""
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".gif", ".svg")
HTML_EXTENSIONS = (".html",)
RESERVED_IDS = ("static", "creatives", "builtin", "sw", "fallback")
"""Path segments under ``/display/`` that belong to the app, so no display may be called that."""

_CREATIVE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_HHMM = re.compile(r"^(?:(?:[01][0-9]|2[0-3]):[0-5][0-9]|24:00)$")


def creative_name_problem(name: str) -> str | None:
    """Why ``name`` is not a safe creative file name (no paths, no dot files), or None if it is."""
    if not _CREATIVE.match(name) or ".." in name:
        return f"creative {name!r} is not a plain file name (letters, digits, . _ -; no paths)"
    if not name.lower().endswith(IMAGE_EXTENSIONS + HTML_EXTENSIONS):
        return f"creative {name!r} is neither an image ({', '.join(IMAGE_EXTENSIONS)}) nor .html"
    return None


def creative_kind(name: str) -> str:
    """``image`` or ``html``, from the file name (with or without the ``builtin:`` prefix)."""
    return "html" if name.lower().endswith(HTML_EXTENSIONS) else "image"


def seconds_of(hhmm: str) -> int:
    """``"HH:MM"`` → seconds after local midnight (``"24:00"`` → 86400). The text is validated first."""
    h, m = hhmm.split(":")
    return int(h) * 3600 + int(m) * 60


def _check_window(start: str, end: str) -> None:
    for key, value in (("start", start), ("end", end)):
        if not _HHMM.match(value):
            raise ValueError(f"{key}: {value!r} is not a time HH:MM (00:00 to 24:00)")
    if start == "24:00":
        raise ValueError("start: 24:00 is the end of a day; use 00:00")
    if seconds_of(start) == seconds_of(end):
        raise ValueError(f"end: a window from {start} to {end} is empty; use 00:00 to 24:00 for all day")


class Daypart(Strict):
    """A named part of the store's day, e.g. breakfast 06:00–11:00; loop items may be limited to some."""

    name: Id
    start: str
    """Local time the daypart begins, ``HH:MM``."""
    end: str
    """Local time it ends (exclusive); earlier than ``start`` means it runs past midnight."""
    days: list[Day] = []
    """Days it applies on; empty: every day."""

    def __post_init__(self) -> None:
        _check_window(self.start, self.end)


class LoopItem(Strict):
    """One creative in a loop, shown for ``duration_s`` whenever its window and dayparts allow."""

    id: Id
    creative: str
    """A file in ``creatives_dir`` (``.html`` fragment or an image), or ``builtin:<name>``."""
    kind: Optional[Literal["html", "image"]] = None
    """Defaults to what the file name says; when given it must agree with it."""
    duration_s: Annotated[float, Meta(ge=1, le=3600)] = 10.0
    days: list[Day] = []
    """Days it plays on; empty: every day."""
    start: str = "00:00"
    end: str = "24:00"
    """Local time window it plays in (``end`` exclusive; earlier than ``start`` wraps past midnight)."""
    dayparts: list[Id] = []
    """Play only while one of these dayparts is current; empty: in any daypart (or none)."""

    def __post_init__(self) -> None:
        name = self.creative.removeprefix(BUILTIN_PREFIX)
        problem = creative_name_problem(name)
        if problem:
            raise ValueError(f"creative: {problem}")
        if self.kind is not None and self.kind != creative_kind(name):
            raise ValueError(f"kind: {self.kind!r} but {self.creative!r} is {creative_kind(name)!r}")
        _check_window(self.start, self.end)


class Loop(Strict):
    """An ordered list of items; a display plays the ones that are due, in this order, round and round."""

    id: Id
    items: Annotated[list[LoopItem], Meta(min_length=1, max_length=200)]

    def __post_init__(self) -> None:
        ids = [i.id for i in self.items]
        dup = sorted({i for i in ids if ids.count(i) > 1})
        if dup:
            raise ValueError(f"items: duplicate item id(s) {', '.join(dup)}")


class Display(Strict):
    """One screen (or a group showing the same thing), at ``/display/<id>``."""

    id: Id
    zones: Annotated[list[str], Meta(min_length=1, max_length=64)]
    """Shelf zones (``Offer.zone``) whose offers this display shows; ``"*"`` means every zone."""
    loop: Id = BUILTIN_LOOP
    """The loop it plays between offers (``default`` is the built-in one)."""

    def __post_init__(self) -> None:
        if self.id in RESERVED_IDS:
            raise ValueError(f"id: {self.id!r} is reserved ({', '.join(RESERVED_IDS)})")
        bad = [z for z in self.zones if not (0 < len(z) <= 64)]
        if bad:
            raise ValueError(f"zones: zone names must be 1 to 64 characters: {bad!r}")


class SignageConfig(Strict):
    displays: Annotated[list[Display], Meta(min_length=1, max_length=64)]
    """The screens this gateway drives; at least one."""
    loops: list[Loop] = []
    """Named loops; ``default`` is built in (and may be overridden here)."""
    dayparts: list[Daypart] = []
    """The store's dayparts; the first one whose window holds the current time is current."""
    bind: str = "127.0.0.1"
    """Address the page server listens on. Keep loopback: the kiosk browser runs on this box."""
    port: Annotated[int, Meta(ge=0, le=65535)] = 8470
    """TCP port; 0 picks a free one. The URL is written to ``/run/endcap/signage.url`` either way."""
    creatives_dir: str = ""
    """Where creatives live; empty: ``/var/lib/endcap/signage/creatives`` (the data partition)."""
    offer_ttl_max_s: Annotated[float, Meta(gt=0, le=600)] = 30.0
    """No offer stays on screen longer than this, whatever its own TTL says."""
    offer_title_max: Annotated[int, Meta(ge=8, le=400)] = 80
    offer_body_max: Annotated[int, Meta(ge=0, le=2000)] = 240
    ring_size: Annotated[int, Meta(ge=1, le=1024)] = 32
    """Offers kept per display for ``Last-Event-ID`` replay after a reconnect."""
    heartbeat_s: Annotated[float, Meta(ge=0.2, le=300)] = 5.0
    """A page acknowledges at least this often, even when nothing changes on screen."""
    screen_stale_s: Annotated[float, Meta(ge=0.5, le=3600)] = 15.0
    """Health is not ok once any display has sent no acknowledgement for this long."""
    sse_ping_s: Annotated[float, Meta(ge=0.2, le=300)] = 10.0
    """Keep-alive event on idle streams; a page that hears nothing for 2.5× this reconnects."""
    reconnect_max_s: Annotated[float, Meta(ge=0.2, le=300)] = 5.0
    """Longest wait between a page's reconnection attempts (exponential backoff from 0.25 s)."""
    http_threads: Annotated[int, Meta(ge=4, le=256)] = 16
    """WSGI worker threads; each open event stream holds one (one or two per screen)."""
    proof_rotate_bytes: Annotated[int, Meta(ge=4096)] = 4 * 1024 * 1024
    proof_keep_files: Annotated[int, Meta(ge=1, le=1000)] = 20
    """Rotated proof-of-play files kept (the uplink ships them; the oldest go first)."""
    currency: Annotated[str, Meta(pattern=r"^[A-Z]{3}$")] = "USD"
    locale: Annotated[str, Meta(pattern=r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$")] = "en-US"
    health_interval_s: Positive = 2.0

    def __post_init__(self) -> None:
        ids = [d.id for d in self.displays]
        dup = sorted({i for i in ids if ids.count(i) > 1})
        if dup:
            raise ValueError(f"displays: duplicate display id(s) {', '.join(dup)}")
        loops = [lp.id for lp in self.loops]
        dup = sorted({i for i in loops if loops.count(i) > 1})
        if dup:
            raise ValueError(f"loops: duplicate loop id(s) {', '.join(dup)}")
        known = set(loops) | {BUILTIN_LOOP}
        for d in self.displays:
            if d.loop not in known:
                raise ValueError(f"displays: display {d.id!r} plays loop {d.loop!r}, which is not defined")
        names = [p.name for p in self.dayparts]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"dayparts: duplicate daypart(s) {', '.join(dup)}")
        for lp in self.loops:
            for item in lp.items:
                missing = [n for n in item.dayparts if n not in names]
                if missing:
                    raise ValueError(f"loops: item {lp.id}.{item.id} names undefined daypart(s) {', '.join(missing)}")
        if self.screen_stale_s <= self.heartbeat_s:
            raise ValueError("screen_stale_s: must exceed heartbeat_s, or a healthy screen looks dead between beats")

    def loop(self, loop_id: str) -> Loop:
        """The loop called ``loop_id`` (config first, then the built-in ``default``)."""
        for lp in self.loops:
            if lp.id == loop_id:
                return lp
        return builtin_loop()

    def display(self, display_id: str) -> Display | None:
        for d in self.displays:
            if d.id == display_id:
                return d
        return None


def builtin_loop() -> Loop:
    """The loop of the unknown-display page and of displays without one: always playable offline."""
    return Loop(id=BUILTIN_LOOP, items=[
        LoopItem(id="welcome", creative="builtin:welcome.html", duration_s=8.0),
        LoopItem(id="fresh", creative="builtin:fresh.html", duration_s=8.0),
    ])


FALLBACK_ITEM = LoopItem(id="fallback", creative="builtin:fallback.html", duration_s=10.0)
"""Shown when no loop item is due or a creative cannot be loaded."""

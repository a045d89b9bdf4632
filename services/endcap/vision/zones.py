"""Shelf zones: which tracked person stands where, for how long, facing the shelf — pure logic.

A zone is a floor polygon in front of a shelf, in the pixel coordinates of its camera's frame. A person
is *in* a zone when their **foot point** (bottom-centre of the box, as Frigate and DeepStream do) lies
inside the polygon: the floor position, not the head, decides, so a tall person standing behind a zone
is not in it.

``ZoneEngine.update(t, observations)`` is called once per processed frame with the tracked people of that
frame and returns the events of that instant:

- a *visit* of (track, zone) opens at the first in-zone observation; ``dwell_s`` = last in-zone time −
  first in-zone time (media time of the frames, so a file clip gives exact, repeatable seconds); a visit
  shorter than ``enter_min_s`` is dropped as soon as its person is seen outside the zone (one short box
  whose foot point jumped into the zone is not the start of a visit);
- ``enter`` is emitted once the visit is confirmed (in the zone ≥ ``enter_min_s`` and its confidence above
  the gate), ``dwell`` every ``dwell_period_s`` after that (only while above the gate), ``exit`` once the
  person has not been seen in the zone for ``exit_grace_s`` (with the total ``dwell_s``). A short absence
  (an occlusion, a step out and back) stays one visit. Unconfirmed visits end silently.
- ``focus`` in [0, 1]: the share of the dwell spent standing still, weighted by whether the last walking
  direction pointed toward the shelf (``facing``). Without pose estimation, "facing" is inferred from
  motion: a person who walked up to the shelf and stopped faces it; one who backed away does not.
- ``confidence`` in [0, 1]: the weakest of four pieces of evidence that this is a real shopper really
  dwelling — *person*: the detector's typical score ``s`` (median of recent in-zone detections) accumulated
  over independent looks, ``1 − (1 − s)^(detected seconds ÷ look_s)`` (a person seen at 0.5 for 3 s is
  surer than one seen at 0.9 once); *coverage*: a 1-s moving average of "detected in this frame" while
  the visit is open (falls while hidden); *duration*: ``dwell_s ÷ min_dwell_s``, capped at 1 (someone
  walking through never reaches the gate); *arrival*: 1 once the track has moved half a body height since
  it was first seen, else 0.5 (a poster or mannequin detected as a person never walks in).

Invariants: no I/O, no clock reads (time is the caller's ``t``), deterministic; times are seconds.
"""
from __future__ import annotations

import math
import statistics
from collections import deque
from dataclasses import dataclass, field
from typing import Sequence

Point = tuple[float, float]
Box = tuple[float, float, float, float]  # x1, y1, x2, y2 in pixels

FACING = {"up": (0.0, -1.0), "down": (0.0, 1.0), "left": (-1.0, 0.0), "right": (1.0, 0.0)}


# --- geometry -------------------------------------------------------------------------------------

def foot_point(box: Box) -> Point:
    """Bottom-centre of a box: where the person stands on the floor."""
    x1, _, x2, y2 = box
    return ((x1 + x2) / 2.0, y2)


def polygon_area(points: Sequence[Point]) -> float:
    """Signed area (shoelace); positive for counter-clockwise in a y-up frame."""
    return 0.5 * sum(points[i][0] * points[(i + 1) % len(points)][1] - points[(i + 1) % len(points)][0] * points[i][1]
                     for i in range(len(points)))


def _orient(a: Point, b: Point, c: Point) -> float:
    return (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])


def _on_segment(a: Point, b: Point, p: Point) -> bool:
    return min(a[0], b[0]) <= p[0] <= max(a[0], b[0]) and min(a[1], b[1]) <= p[1] <= max(a[1], b[1])


def segments_intersect(a: Point, b: Point, c: Point, d: Point) -> bool:
    """True if segment ab and segment cd share at least one point (touching and overlap included)."""
    o1, o2, o3, o4 = _orient(a, b, c), _orient(a, b, d), _orient(c, d, a), _orient(c, d, b)
    if ((o1 > 0 > o2) or (o1 < 0 < o2)) and ((o3 > 0 > o4) or (o3 < 0 < o4)):
        return True
    return ((o1 == 0 and _on_segment(a, b, c)) or (o2 == 0 and _on_segment(a, b, d))
            or (o3 == 0 and _on_segment(c, d, a)) or (o4 == 0 and _on_segment(c, d, b)))


def polygon_problems(points: Sequence[Sequence[float]], width: int, height: int) -> list[str]:
    """Why ``points`` is not a usable zone of a ``width``×``height`` frame (empty list: it is).

    A zone must have at least 3 distinct vertices, lie inside the frame, enclose an area and be simple
    (no edge crosses or touches a non-adjacent edge: a bow-tie has no well-defined inside).
    """
    if len(points) < 3:
        return [f"needs at least 3 points, has {len(points)}"]
    if any(len(p) != 2 for p in points):
        return ["every point must be [x, y]"]
    pts = [(float(p[0]), float(p[1])) for p in points]
    problems = []
    outside = [i for i, (x, y) in enumerate(pts) if not (0 <= x <= width and 0 <= y <= height)]
    if outside:
        problems.append(f"point(s) {', '.join(str(i) for i in outside)} outside the {width}x{height} frame")
    if len(set(pts)) != len(pts):
        problems.append("repeats a point")
        return problems
    n = len(pts)
    for i in range(n):
        for j in range(i + 1, n):
            if j == i + 1 or (i == 0 and j == n - 1):
                continue  # adjacent edges share a vertex by construction
            if segments_intersect(pts[i], pts[(i + 1) % n], pts[j], pts[(j + 1) % n]):
                problems.append(f"is self-intersecting (edge {i}-{(i + 1) % n} crosses edge {j}-{(j + 1) % n})")
                return problems
    if abs(polygon_area(pts)) < 1.0:
        problems.append("encloses no area (points on one line)")
    return problems


def point_in_polygon(p: Point, poly: Sequence[Point]) -> bool:
    """Even-odd ray casting; a point on the boundary counts as inside."""
    x, y = p
    inside = False
    n = len(poly)
    for i in range(n):
        (x1, y1), (x2, y2) = poly[i], poly[(i + 1) % n]
        if _orient((x1, y1), (x2, y2), p) == 0 and _on_segment((x1, y1), (x2, y2), p):
            return True
        if (y1 > y) != (y2 > y):
            xi = x1 + (y - y1) * (x2 - x1) / (y2 - y1)
            if xi > x:
                inside = not inside
    return inside


# --- the state machine ----------------------------------------------------------------------------

@dataclass(frozen=True)
class Zone:
    id: str
    polygon: tuple[Point, ...]
    facing: Point = FACING["up"]  # unit vector from the zone toward its shelf, in image coordinates

    def contains(self, p: Point) -> bool:
        return point_in_polygon(p, self.polygon)


@dataclass(frozen=True)
class Rules:
    gate: float = 0.85
    """Events are emitted only while a visit's confidence is above this (exit: once it was)."""
    enter_min_s: float = 0.5
    dwell_period_s: float = 1.0
    exit_grace_s: float = 1.5
    min_dwell_s: float = 2.0
    """Dwell at which the dwell ramp of the confidence reaches 1."""
    still_speed: float = 0.25
    """Below this foot-point speed (box heights per second) a person stands still."""
    move_speed: float = 0.5
    """Above this speed the walking direction is taken as the person's heading."""
    coverage_tau_s: float = 1.0
    score_window: int = 15
    look_s: float = 0.5
    """Detected seconds that count as one independent look (consecutive frames are not independent)."""
    arrival_heights: float = 0.5
    """A track has *arrived* once its foot point moved this many box heights from where it was first seen."""
    forget_s: float = 30.0
    """Tracks unseen for this long are forgotten (their arrival state with them)."""


@dataclass(frozen=True)
class Observation:
    """One tracked person in one frame. ``detected`` is False when the tracker only predicted the box."""

    track_id: int
    box: Box
    score: float
    detected: bool = True


@dataclass(frozen=True)
class ZoneUpdate:
    zone: str
    track_id: int
    kind: str  # enter | dwell | exit
    dwell_s: float
    focus: float
    confidence: float
    t: float
    first_t: float  # when the visit started (media time), for evaluation and debugging


@dataclass
class _Visit:
    zone: Zone
    track_id: int
    first_t: float
    last_t: float
    last_pos: Point
    last_obs_t: float
    box_h: float
    scores: deque = field(default_factory=deque)
    detected_s: float = 0.0
    coverage: float = 1.0
    still_s: float = 0.0
    focus_s: float = 0.0
    heading: Point | None = None
    entered: bool = False
    next_dwell_t: float = 0.0
    best_confidence: float = 0.0

    @property
    def dwell_s(self) -> float:
        return self.last_t - self.first_t

    def focus(self) -> float:
        return 0.0 if self.dwell_s <= 0 else min(1.0, self.focus_s / self.dwell_s)

    def confidence(self, rules: Rules, arrived: bool) -> float:
        score = min(1.0, max(0.0, statistics.median(self.scores))) if self.scores else 0.0
        looks = max(1.0, self.detected_s / rules.look_s) if rules.look_s > 0 else 1.0
        person = 1.0 - (1.0 - score) ** looks
        duration = min(1.0, self.dwell_s / rules.min_dwell_s) if rules.min_dwell_s > 0 else 1.0
        return max(0.0, min(person, self.coverage, duration, 1.0 if arrived else 0.5))


@dataclass
class _TrackMemory:
    origin: Point
    last_t: float
    arrived: bool = False


class ZoneEngine:
    """Visits of tracked people in the zones of one camera; see the module docstring for the rules."""

    def __init__(self, zones: Sequence[Zone], rules: Rules = Rules()) -> None:
        self.zones = list(zones)
        self.rules = rules
        self._visits: dict[tuple[int, str], _Visit] = {}
        self._tracks: dict[int, _TrackMemory] = {}
        self._last_t: float | None = None

    @property
    def open_visits(self) -> int:
        return len(self._visits)

    def zones_of(self, box: Box) -> list[str]:
        p = foot_point(box)
        return [z.id for z in self.zones if z.contains(p)]

    def update(self, t: float, observations: Sequence[Observation]) -> list[ZoneUpdate]:
        """Advance to time ``t`` (non-decreasing) with this frame's people; return the events of ``t``."""
        r = self.rules
        dt = 0.0 if self._last_t is None else max(0.0, t - self._last_t)
        self._last_t = t
        alpha = 1.0 - math.exp(-dt / r.coverage_tau_s) if r.coverage_tau_s > 0 else 1.0
        seen: set[tuple[int, str]] = set()
        out: list[ZoneUpdate] = []
        for ob in observations:
            p = foot_point(ob.box)
            h = max(1.0, ob.box[3] - ob.box[1])
            mem = self._tracks.get(ob.track_id)
            if mem is None:
                mem = self._tracks[ob.track_id] = _TrackMemory(p, t)
            mem.last_t = t
            if not mem.arrived and math.hypot(p[0] - mem.origin[0], p[1] - mem.origin[1]) >= r.arrival_heights * h:
                mem.arrived = True
            for z in self.zones:
                key = (ob.track_id, z.id)
                if not z.contains(p):
                    v = self._visits.get(key)
                    if v is not None and not v.entered and v.dwell_s < r.enter_min_s:
                        del self._visits[key]  # a blip (one short box's foot point in the zone), not a visit
                    continue
                seen.add(key)
                v = self._visits.get(key)
                if v is None:
                    v = self._visits[key] = _Visit(z, ob.track_id, t, t, p, t, h)
                    v.scores.append(ob.score if ob.detected else 0.0)
                    continue
                self._step(v, ob, p, h, t, alpha)
        for key, v in list(self._visits.items()):
            if key not in seen:
                v.coverage += alpha * (0.0 - v.coverage)
            out.extend(self._emit(v, t))
        for tid in [tid for tid, m in self._tracks.items() if t - m.last_t > r.forget_s]:
            del self._tracks[tid]
        return out

    def _step(self, v: _Visit, ob: Observation, p: Point, h: float, t: float, alpha: float) -> None:
        r = self.rules
        step_dt = t - v.last_obs_t
        if ob.detected:
            v.detected_s += min(step_dt, r.look_s)
        if step_dt > 0:
            dx, dy = p[0] - v.last_pos[0], p[1] - v.last_pos[1]
            speed = math.hypot(dx, dy) / step_dt / max(h, v.box_h)
            if speed >= r.move_speed:
                norm = math.hypot(dx, dy)
                v.heading = (dx / norm, dy / norm)
            elif speed < r.still_speed:  # standing (also across a short occlusion, if still in place)
                v.still_s += step_dt
                if v.heading is None:
                    weight = 0.5
                else:
                    cos = v.heading[0] * v.zone.facing[0] + v.heading[1] * v.zone.facing[1]
                    weight = max(0.1, 0.5 + 0.5 * cos)
                v.focus_s += step_dt * weight
        v.last_pos, v.last_obs_t, v.last_t, v.box_h = p, t, t, h
        v.coverage += alpha * ((1.0 if ob.detected else 0.0) - v.coverage)
        v.scores.append(ob.score if ob.detected else 0.0)
        while len(v.scores) > r.score_window:
            v.scores.popleft()

    def _emit(self, v: _Visit, t: float) -> list[ZoneUpdate]:
        r = self.rules
        key = (v.track_id, v.zone.id)
        if t - v.last_t > r.exit_grace_s:
            del self._visits[key]
            if v.entered:
                return [self._event(v, "exit", t, v.best_confidence)]
            return []
        mem = self._tracks.get(v.track_id)
        conf = v.confidence(r, mem is not None and mem.arrived)
        if conf > r.gate:
            v.best_confidence = max(v.best_confidence, conf)
        if not v.entered:
            if v.dwell_s >= r.enter_min_s and conf > r.gate:
                v.entered = True
                v.next_dwell_t = t + r.dwell_period_s
                return [self._event(v, "enter", t, conf)]
            return []
        if t >= v.next_dwell_t:
            v.next_dwell_t = t + r.dwell_period_s
            if conf > r.gate:
                return [self._event(v, "dwell", t, conf)]
        return []

    def flush(self, t: float) -> list[ZoneUpdate]:
        """Close every open visit now (end of stream, shutdown): exits for the confirmed ones."""
        out = [self._event(v, "exit", t, v.best_confidence) for v in self._visits.values() if v.entered]
        self._visits.clear()
        return out

    @staticmethod
    def _event(v: _Visit, kind: str, t: float, conf: float) -> ZoneUpdate:
        # confidence is not rounded: a value just above the gate must not be rounded onto it
        return ZoneUpdate(v.zone.id, v.track_id, kind, round(v.dwell_s, 3), round(v.focus(), 3), conf, t, v.first_t)

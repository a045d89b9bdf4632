"""Tracking: ByteTrack (PyPI ``trackers==2.1.0``) gives per-frame identities; ``Relinker`` keeps a shopper's
identity when the tracker loses and re-finds them inside a zone.

ByteTrack associates boxes frame to frame by IoU with a Kalman prediction (two passes: confident boxes
first, then weak ones, which keeps a half-hidden person attached). When someone is hidden longer than its
lost-track buffer (a passer-by standing in front of them), ByteTrack starts a new id for the same person;
that would split one dwell into two. ``Relinker`` (pure) maps tracker ids to our stable ids and gives a
*new* tracker id the stable id of a person lost recently (``window_s``) *inside a zone*, close to where
they were lost (foot points within ``max_distance`` box heights, similar box height). Outside zones
identity does not matter to any event, so nothing is re-linked there (fewer wrong merges).

Invariants: stable ids are per camera, start at 1 and are never reused; a stable id is held by at most
one track per frame; ``Relinker`` does no I/O and reads no clock.
"""
from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from .detectors.api import Detections
from .zones import Box, Point, foot_point

# trackers' ByteTrack numbers its tracks from a class-level counter shared by every instance; cameras
# run in threads, so updates are serialised (they take well under a millisecond).
_BYTETRACK_LOCK = threading.Lock()


@dataclass(frozen=True)
class Track:
    track_id: int  # the stable id (after re-linking)
    box: Box
    score: float


class ByteTracker:
    """ByteTrack over our ``Detections``; returns ``(tracker_id, box, score)`` for confirmed tracks only."""

    def __init__(self, fps: float, lost_track_s: float = 1.0, activation: float = 0.6, high: float = 0.6,
                 min_iou: float = 0.1, min_frames: int = 2) -> None:
        from trackers import ByteTrackTracker  # heavy import (supervision): only when a camera starts

        # lost_track_buffer is counted in frames at 30 fps and scaled by frame_rate / 30 inside
        self._bt = ByteTrackTracker(lost_track_buffer=max(1, round(lost_track_s * 30)), frame_rate=fps,
                                    track_activation_threshold=activation, minimum_consecutive_frames=min_frames,
                                    minimum_iou_threshold=min_iou, high_conf_det_threshold=high)

    def update(self, dets: Detections) -> list[tuple[int, Box, float]]:
        import supervision as sv

        svd = sv.Detections(xyxy=dets.boxes.astype(np.float32).reshape(-1, 4),
                            confidence=dets.scores.astype(np.float32), class_id=np.zeros(len(dets), dtype=int))
        with _BYTETRACK_LOCK:
            out = self._bt.update(svd)
        ids = out.tracker_id if out.tracker_id is not None else np.array([], dtype=int)
        conf = out.confidence if out.confidence is not None else np.ones(len(out))
        return [(int(i), tuple(float(v) for v in box), float(c))
                for i, box, c in zip(ids, out.xyxy, conf) if int(i) >= 0]


@dataclass
class _Lost:
    stable_id: int
    foot: Point
    height: float
    t: float


class Relinker:
    """Tracker ids -> stable ids, re-linking tracks fragmented inside a zone (see module docstring)."""

    def __init__(self, in_zone: Callable[[Point], bool], window_s: float = 3.0, max_distance: float = 0.75,
                 max_height_ratio: float = 1.5) -> None:
        self._in_zone = in_zone
        self.window_s = window_s
        self.max_distance = max_distance
        self.max_height_ratio = max_height_ratio
        self._map: dict[int, int] = {}  # tracker id -> stable id
        self._last: dict[int, _Lost] = {}  # stable id -> where/when last seen
        self._next = 1
        self.relinked = 0

    def assign(self, t: float, tracked: Sequence[tuple[int, Box, float]]) -> list[Track]:
        current = {tid for tid, _, _ in tracked}
        active_stable = {self._map[tid] for tid in current if tid in self._map}
        # Recently lost inside a zone and not on screen now: candidates for a new tracker id.
        lost = [lo for sid, lo in self._last.items()
                if sid not in active_stable and t - lo.t <= self.window_s and self._in_zone(lo.foot)]
        out = []
        for tid, box, score in sorted(tracked, key=lambda x: x[0]):
            sid = self._map.get(tid)
            foot, h = foot_point(box), max(1.0, box[3] - box[1])
            if sid is None:
                best = self._closest(lost, foot, h)
                if best is not None:
                    lost.remove(best)
                    sid = best.stable_id
                    self.relinked += 1
                    for old in [k for k, v in self._map.items() if v == sid]:
                        del self._map[old]  # the old tracker id must never bring back a second copy
                else:
                    sid = self._next
                    self._next += 1
                self._map[tid] = sid
            self._last[sid] = _Lost(sid, foot, h, t)
            out.append(Track(sid, box, score))
        self._forget(t, current)
        return out

    def _closest(self, lost: list[_Lost], foot: Point, h: float) -> _Lost | None:
        best, best_d = None, math.inf
        for lo in lost:
            ratio = max(h, lo.height) / min(h, lo.height)
            d = math.hypot(foot[0] - lo.foot[0], foot[1] - lo.foot[1]) / max(h, lo.height)
            if ratio <= self.max_height_ratio and d <= self.max_distance and d < best_d:
                best, best_d = lo, d
        return best

    def _forget(self, t: float, current: set[int]) -> None:
        for sid in [s for s, lo in self._last.items() if t - lo.t > self.window_s]:
            del self._last[sid]
        live = set(self._last)
        for tid in [tid for tid, sid in self._map.items() if tid not in current and sid not in live]:
            del self._map[tid]

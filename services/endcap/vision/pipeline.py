"""One camera's processing chain: frame -> detections -> tracks (re-linked) -> zone events.

Used by the service (one per camera thread), by the accuracy tests and by the benchmark, so all three
measure the same code. ``process`` does no I/O beyond the detector; boxes are scaled from the frame's size
to the camera's configured ``width``×``height`` (the coordinates its zones are drawn in). Time is the
frame's ``t_media``.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

from .config import CameraConfig, VisionConfig
from .detectors.api import Detections
from .tracking import ByteTracker, Relinker, Track
from .zones import FACING, Observation, Rules, Zone, ZoneEngine, ZoneUpdate


def zones_of(cam: CameraConfig) -> list[Zone]:
    return [Zone(z.id, tuple((float(x), float(y)) for x, y in z.polygon), FACING[z.facing]) for z in cam.zones]


def rules_of(cfg: VisionConfig) -> Rules:
    return Rules(gate=cfg.gate, enter_min_s=cfg.enter_min_s, dwell_period_s=cfg.dwell_period_s,
                 exit_grace_s=cfg.exit_grace_s, min_dwell_s=cfg.min_dwell_s)


@dataclass
class Result:
    detections: Detections  # in camera (zone) coordinates
    tracks: list[Track]
    updates: list[ZoneUpdate]
    detect_s: float
    track_s: float
    zones_s: float


class CameraPipeline:
    def __init__(self, cam: CameraConfig, cfg: VisionConfig, detector, fps: float | None = None) -> None:
        self.cam = cam
        self.detector = detector
        self.zones = zones_of(cam)
        self.engine = ZoneEngine(self.zones, rules_of(cfg))
        t = cfg.tracker
        self.tracker = ByteTracker(fps=fps or cam.fps, lost_track_s=t.lost_track_s, activation=t.activation, high=t.high,
                                   min_iou=t.min_iou)
        self.relinker = Relinker(self._in_any_zone, window_s=t.relink_window_s, max_distance=t.relink_distance)

    def _in_any_zone(self, p) -> bool:
        return any(z.contains(p) for z in self.zones)

    def process(self, frame) -> Result:
        t0 = time.perf_counter()
        h, w = frame.image.shape[:2]
        dets = self.detector.detect(frame).scaled(self.cam.width / w, self.cam.height / h)
        t1 = time.perf_counter()
        tracks = self.relinker.assign(frame.t_media, self.tracker.update(dets))
        t2 = time.perf_counter()
        updates = self.engine.update(frame.t_media, [Observation(tr.track_id, tr.box, tr.score) for tr in tracks])
        t3 = time.perf_counter()
        return Result(dets, tracks, updates, t1 - t0, t2 - t1, t3 - t2)

    def flush(self, t: float) -> list[ZoneUpdate]:
        return self.engine.flush(t)

"""Scoring the vision pipeline against a composite clip's ground truth (dev tool: tests and benchmarks).

Detection: per frame, detections are matched greedily (by score) to truth boxes at IoU ≥ 0.5. People
less than ``min_visibility`` visible are *don't care*: a detection on them is neither a hit nor a false
alarm, and missing them is no miss (the usual crowd-benchmark convention). Precision = hits ÷ detections
counted; recall = hits ÷ people counted.

Dwell: the events the pipeline emitted are grouped into visits (camera zone + stable track id, from
``enter`` to ``exit``); each is matched to the truth visit of the same zone it overlaps most in time.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


def iou(a, b) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


@dataclass
class DetectionScore:
    hits: int = 0
    false_alarms: int = 0
    misses: int = 0

    @property
    def precision(self) -> float:
        n = self.hits + self.false_alarms
        return self.hits / n if n else 1.0

    @property
    def recall(self) -> float:
        n = self.hits + self.misses
        return self.hits / n if n else 1.0

    def add_frame(self, boxes: np.ndarray, scores: np.ndarray, people: list[dict], min_visibility: float = 0.5,
                  min_iou: float = 0.5) -> None:
        order = np.argsort(-scores) if len(scores) else []
        taken: set[int] = set()
        for d in order:
            best, best_iou = None, min_iou
            for k, p in enumerate(people):
                if k in taken:
                    continue
                v = iou(boxes[d], p["box"])
                if v >= best_iou:
                    best, best_iou = k, v
            if best is None:
                self.false_alarms += 1
                continue
            taken.add(best)
            if people[best]["visibility"] >= min_visibility:
                self.hits += 1
        self.misses += sum(1 for k, p in enumerate(people) if k not in taken and p["visibility"] >= min_visibility)


@dataclass
class EventVisit:
    zone: str
    track_id: int
    first_t: float
    dwell_s: float | None = None  # from the exit event
    events: list = field(default_factory=list)


def group_visits(updates) -> list[EventVisit]:
    """``ZoneUpdate``s (or ``ZoneEvent``-like objects with the same fields) -> one entry per visit."""
    open_: dict[tuple[str, int], EventVisit] = {}
    done: list[EventVisit] = []
    for u in updates:
        key = (u.zone, u.track_id)
        v = open_.get(key)
        if v is None:
            v = open_[key] = EventVisit(u.zone, u.track_id, getattr(u, "first_t", 0.0))
        v.events.append(u)
        if u.kind == "exit":
            v.dwell_s = u.dwell_s
            done.append(open_.pop(key))
    return done + list(open_.values())


def match_visits(visits: list[EventVisit], truth_visits: list[dict]) -> list[tuple[EventVisit, dict | None]]:
    """Each event visit with the truth visit of its zone that overlaps it most in time (None: no overlap)."""
    out = []
    for v in visits:
        end = v.first_t + (v.dwell_s or 0.0)
        best, best_overlap = None, 0.0
        for tv in truth_visits:
            if tv["zone"] != v.zone:
                continue
            overlap = min(end, tv["last_t"]) - max(v.first_t, tv["first_t"])
            if overlap > best_overlap:
                best, best_overlap = tv, overlap
        out.append((v, best))
    return out

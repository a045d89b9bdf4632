"""Per-camera telemetry: latency (capture -> detections -> event published), FPS, dropped frames; and the
per-zone aggregates that may leave the device (counts and seconds, never images or identities).

Pure bookkeeping over numbers the worker hands in; health counters are flat ``name -> float`` so the
maintenance page and the uplink can read them without knowing vision.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field


def percentile(values, q: float) -> float:
    """Nearest-rank percentile (``q`` in [0, 1]) of a non-empty sequence; 0.0 for an empty one."""
    vals = sorted(values)
    if not vals:
        return 0.0
    return float(vals[min(len(vals) - 1, max(0, round(q * (len(vals) - 1))))])


@dataclass
class CameraStats:
    window: int = 300
    frames: int = 0
    dropped: int = 0  # grabbed but overwritten before processing (processing too slow)
    skipped: int = 0  # left out on purpose (fps cap)
    reconnects: int = 0
    events: int = 0
    detected_ms: deque = field(default_factory=deque)  # capture -> detections ready (includes waiting in the slot)
    latency_ms: deque = field(default_factory=deque)  # capture -> all of the frame's events published
    event_latency_ms: deque = field(default_factory=deque)  # same, frames that produced events only
    detect_ms: deque = field(default_factory=deque)
    track_ms: deque = field(default_factory=deque)
    zones_ms: deque = field(default_factory=deque)
    done_at: deque = field(default_factory=deque)  # monotonic seconds of the last processed frames
    people: int = 0

    def _push(self, d: deque, v: float) -> None:
        d.append(v)
        if len(d) > self.window:
            d.popleft()

    def record(self, *, t_capture: float, t_detected: float, t_done: float, detect_s: float, track_s: float,
               zones_s: float, events: int, people: int) -> None:
        self.frames += 1
        self.events += events
        self.people = people
        self._push(self.detected_ms, (t_detected - t_capture) * 1000.0)
        ms = (t_done - t_capture) * 1000.0
        self._push(self.latency_ms, ms)
        if events:
            self._push(self.event_latency_ms, ms)
        self._push(self.detect_ms, detect_s * 1000.0)
        self._push(self.track_ms, track_s * 1000.0)
        self._push(self.zones_ms, zones_s * 1000.0)
        self._push(self.done_at, t_done)

    def fps(self) -> float:
        if len(self.done_at) < 2 or self.done_at[-1] <= self.done_at[0]:
            return 0.0
        return (len(self.done_at) - 1) / (self.done_at[-1] - self.done_at[0])

    def counters(self, camera: str) -> dict[str, float]:
        p = f"camera.{camera}."
        return {
            p + "frames": float(self.frames), p + "dropped": float(self.dropped), p + "skipped": float(self.skipped),
            p + "reconnects": float(self.reconnects), p + "events": float(self.events), p + "people": float(self.people),
            p + "fps": round(self.fps(), 2),
            p + "detected_p50_ms": round(percentile(self.detected_ms, 0.5), 2),
            p + "latency_p50_ms": round(percentile(self.latency_ms, 0.5), 2),
            p + "latency_p99_ms": round(percentile(self.latency_ms, 0.99), 2),
            p + "event_latency_p99_ms": round(percentile(self.event_latency_ms, 0.99), 2),
            p + "detect_p50_ms": round(percentile(self.detect_ms, 0.5), 2),
            p + "track_p50_ms": round(percentile(self.track_ms, 0.5), 3),
            p + "zones_p50_ms": round(percentile(self.zones_ms, 0.5), 3),
        }


@dataclass
class ZoneTotals:
    """Uplinkable aggregates of one zone: finished visits that passed the gate, and their seconds."""

    visits: int = 0
    dwell_s: float = 0.0
    focus_s: float = 0.0

    def add_exit(self, dwell_s: float, focus: float) -> None:
        self.visits += 1
        self.dwell_s += dwell_s
        self.focus_s += dwell_s * focus

    def counters(self, camera: str, zone: str) -> dict[str, float]:
        p = f"zone.{camera}.{zone}."
        return {p + "visits": float(self.visits), p + "dwell_s": round(self.dwell_s, 1), p + "focus_s": round(self.focus_s, 1)}

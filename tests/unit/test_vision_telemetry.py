"""Telemetry bookkeeping and the debug view's privacy transform (blur before anything is drawn)."""
from __future__ import annotations

import numpy as np

from endcap.vision.debugview import BLUR_FACTOR, annotate, blur
from endcap.vision.telemetry import CameraStats, ZoneTotals, percentile
from endcap.vision.tracking import Track
from endcap.vision.zones import Zone


def test_percentile_nearest_rank():
    assert percentile([], 0.5) == 0.0
    assert percentile([5, 1, 3], 0.5) == 3 and percentile(range(101), 0.99) == 99


def test_camera_stats_report_latency_fps_and_drops():
    s = CameraStats(window=10)
    for i in range(20):
        s.record(t_capture=i * 0.1, t_detected=i * 0.1 + 0.016, t_done=i * 0.1 + 0.02 + (0.08 if i == 19 else 0),
                 detect_s=0.015, track_s=0.001,
                 zones_s=0.0001, events=1 if i % 5 == 0 else 0, people=2)
    s.dropped = 3
    c = s.counters("cam1")
    assert c["camera.cam1.frames"] == 20 and c["camera.cam1.dropped"] == 3 and c["camera.cam1.events"] == 4
    assert abs(c["camera.cam1.latency_p50_ms"] - 20) < 1e-6 and abs(c["camera.cam1.latency_p99_ms"] - 100) < 1e-6
    assert 9.0 < c["camera.cam1.fps"] < 11.5 and len(s.latency_ms) == 10
    assert abs(c["camera.cam1.detected_p50_ms"] - 16) < 1e-6


def test_zone_totals_are_aggregates_only():
    z = ZoneTotals()
    z.add_exit(10.0, 0.5)
    z.add_exit(4.0, 1.0)
    assert z.counters("cam1", "B") == {"zone.cam1.B.visits": 2.0, "zone.cam1.B.dwell_s": 14.0, "zone.cam1.B.focus_s": 9.0}


def test_the_debug_view_blurs_away_detail_and_labels_itself():
    rng = np.random.default_rng(0)
    sharp = rng.integers(0, 255, (360, 640, 3), dtype=np.uint8)  # all high-frequency detail
    soft = blur(sharp)
    assert soft.shape == sharp.shape
    # nothing finer than the blur survives: neighbouring pixels are nearly equal
    assert np.abs(np.diff(soft.astype(int), axis=1)).mean() < 2 < np.abs(np.diff(sharp.astype(int), axis=1)).mean()
    out = annotate(sharp, "bgr", [Zone("B", ((10, 100), (200, 100), (200, 200), (10, 200)))],
                   [Track(3, (300, 100, 350, 300), 0.9)], (1.0, 1.0))
    bar = max(18, 360 // 20)
    assert (out[:bar, :, 2] >= 150).mean() > 0.8  # the red banner across the top (BGR: red channel)
    assert BLUR_FACTOR >= 8

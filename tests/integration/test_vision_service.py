"""The vision service as a real process: zone events from the composite clip on the real bus, health that
names a broken camera while the others keep working, bad config refused before READY, and the
technician's debug view (blurred, labelled, loopback only)."""
from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request

import numpy as np

from endcap.core.bus import Subscriber
from endcap.core.errors import BusTimeout
from endcap.launcher import wait_health
from tests.fixtures.vision import aisle_clip, camera_toml, vision_toml  # noqa: F401 - fixture


def _events_until(sub: Subscriber, done, timeout_s: float) -> list:
    got, deadline = [], time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            msg = sub.recv()
        except BusTimeout:
            continue
        got.append(msg.body)
        if done(got):
            return got
    raise AssertionError(f"condition not met within {timeout_s} s; got {got}")


def test_zone_events_from_a_clip_reach_the_bus_and_health_reports_telemetry(gateway, aisle_clip):  # noqa: F811
    gateway.write_config(vision_toml(camera_toml(aisle_clip, speed=2.0)))
    with Subscriber([gateway.paths.pub_address("vision")], ["vision.zone"], "test", recv_timeout_ms=500) as sub:
        proc = gateway.start("vision", timeout_s=60)
        events = _events_until(sub, lambda ev: any(e.kind == "exit" and e.dwell_s >= 3.0 for e in ev), 60)
    first_exit = next(e for e in events if e.kind == "exit")
    same = [e for e in events if (e.zone, e.track_id) == (first_exit.zone, first_exit.track_id)]
    assert same[0].kind == "enter" and all(e.confidence > 0.85 for e in same)
    assert all(e.camera == "cam1" and e.zone in {"A", "B", "C"} for e in events)
    assert abs(time.time() - first_exit.ts) < 30
    health = wait_health(gateway.paths, "vision", lambda h: h.ok and h.counters.get("camera.cam1.frames", 0) > 20)
    c = health.counters
    assert c["camera.cam1.fps"] > 1 and 0 < c["camera.cam1.latency_p50_ms"] <= c["camera.cam1.latency_p99_ms"]
    assert c[f"zone.cam1.{first_exit.zone}.visits"] >= 1 and c["camera.cam1.ok"] == 1.0
    assert proc.stop() == 0


def test_health_names_the_broken_cameras_while_the_good_one_keeps_working(gateway, aisle_clip, tmp_path):  # noqa: F811
    junk = tmp_path / "junk.avi"
    junk.write_bytes(np.random.default_rng(3).integers(0, 255, 40_000, dtype=np.uint8).tobytes())
    gateway.write_config(vision_toml(
        camera_toml(aisle_clip, "good", speed=2.0, loop=True),
        camera_toml(aisle_clip, "gone", source="/nonexistent/aisle.avi"),
        camera_toml(aisle_clip, "rtsp", source="rtsp://127.0.0.1:9/stream"),
        camera_toml(aisle_clip, "junk", source=str(junk))))
    proc = gateway.start("vision", timeout_s=60)
    h = wait_health(gateway.paths, "vision", lambda h: not h.ok and h.counters.get("camera.good.frames", 0) > 10
                    and h.counters.get("camera.rtsp.reconnects", 0) >= 2, timeout_s=60)
    msg = h.last_error.message
    assert "camera gone: video file not found (/nonexistent/aisle.avi)" in msg
    assert "camera rtsp: cannot connect (rtsp://127.0.0.1:9/stream)" in msg
    assert "camera junk: " in msg and "camera good" not in msg
    assert h.last_error.code == "camera" and h.status.startswith("failing: ")
    assert h.counters["camera.good.ok"] == 1.0 and h.counters["camera.gone.ok"] == 0.0
    assert proc.alive()  # retrying with backoff, never a crash loop


def _config_error(gateway, cfg_text: str, needle: str) -> None:
    gateway.write_config(cfg_text)
    check = subprocess.run([sys.executable, "-m", "endcap.cli", "check-config", str(gateway.paths.config_file)],
                           capture_output=True, text=True, timeout=60)
    assert check.returncode == 1 and needle in check.stderr, check.stderr
    run = subprocess.run([sys.executable, "-m", "endcap.cli", "service", "vision", "--root", str(gateway.root)],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 78 and needle in run.stderr, run.stderr


def test_bad_zones_and_unknown_detectors_are_refused_before_start(gateway, aisle_clip):  # noqa: F811
    cam = camera_toml(aisle_clip)
    _config_error(gateway, vision_toml(cam.replace("[630, 250]", "[660, 250]")),
                  "zones: zone 'C' polygon point(s) 2 outside the 640x360 frame")
    _config_error(gateway, vision_toml(cam.replace("[[225, 165], [415, 165], [420, 250], [220, 250]]",
                                                   "[[225, 165], [420, 250], [415, 165], [220, 250]]")),
                  "zone 'B' polygon is self-intersecting")
    _config_error(gateway, vision_toml(cam, extra='[vision.detector]\ntype = "yolo"\n'),
                  "vision.detector.type: unknown detector type 'yolo'; known: ssd_cpu, jetson, hog")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_debug_view_serves_blurred_labelled_frames_on_loopback_only(gateway, aisle_clip):  # noqa: F811
    import cv2

    port = _free_port()
    gateway.write_config(vision_toml(camera_toml(aisle_clip, loop=True),
                                     extra=f"[vision.debug_view]\nenabled = true\nport = {port}\n"))
    gateway.start("vision", timeout_s=60)
    wait_health(gateway.paths, "vision", lambda h: h.ok)
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as r:
        assert "technician only" in r.read().decode()
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/cam1.jpg", timeout=10) as r:
        assert r.headers["Content-Type"] == "image/jpeg" and r.headers["Cache-Control"] == "no-store"
        served = cv2.imdecode(np.frombuffer(r.read(), np.uint8), cv2.IMREAD_COLOR)
    cap = cv2.VideoCapture(str(aisle_clip.video))
    _, raw = cap.read()
    cap.release()
    assert served.shape == raw.shape
    bar = max(18, served.shape[0] // 20)
    sharp = cv2.Laplacian(cv2.cvtColor(raw, cv2.COLOR_BGR2GRAY), cv2.CV_64F).var()
    # outside the banner and the drawn lines, the served picture has lost the detail of the camera's
    body = cv2.cvtColor(served[bar + 40:, :], cv2.COLOR_BGR2GRAY)
    assert cv2.Laplacian(body, cv2.CV_64F).var() < sharp
    assert (served[:bar, :, 2] >= 150).mean() > 0.8  # the red "debug view" banner
    with socket.socket() as s:  # nothing listens on the network side
        addrs = [a for a in socket.gethostbyname_ex(socket.gethostname())[2] if not a.startswith("127.")]
        if addrs:
            s.settimeout(1)
            assert s.connect_ex((addrs[0], port)) != 0

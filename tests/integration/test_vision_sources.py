"""OpenCV frame sources on real files: timing on the clip's own timeline, looping, and bad files."""
from __future__ import annotations

import numpy as np
import pytest

from endcap.vision.sources import OpenCvSource, SourceError


@pytest.fixture
def tiny_video(tmp_path):
    import cv2

    path = tmp_path / "tiny.avi"
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 5.0, (64, 48))
    for i in range(10):
        w.write(np.full((48, 64, 3), i * 20, np.uint8))
    w.release()
    return path


def test_frames_carry_media_time_and_a_file_ends_with_an_error(tiny_video):
    src = OpenCvSource("cam1", f"file://{tiny_video}", pace=False)
    src.open()
    frames = [src.read(1.0) for _ in range(10)]
    assert [f.index for f in frames] == list(range(10)) and frames[3].t_media == pytest.approx(0.6)
    assert frames[0].color == "bgr" and frames[0].image.shape == (48, 64, 3)
    with pytest.raises(SourceError, match="camera cam1: end of video file"):
        src.read(1.0)
    src.close()


def test_a_looping_file_keeps_its_clock_running(tiny_video):
    src = OpenCvSource("cam1", str(tiny_video), loop=True, pace=False)
    src.open()
    frames = [src.read(1.0) for _ in range(25)]
    assert frames[-1].t_media == pytest.approx(24 / 5.0)
    assert np.array_equal(frames[10].image, frames[0].image) or abs(int(frames[10].image.mean()) - int(frames[0].image.mean())) < 3


def test_pacing_plays_a_file_like_a_camera(tiny_video):
    src = OpenCvSource("cam1", str(tiny_video), speed=2.0)
    src.open()
    frames = [src.read(1.0) for _ in range(10)]
    # frames 0..9 at 5 fps span 1.8 s of media; at 2x real time that is 0.9 s of wall time
    assert frames[-1].t_media == pytest.approx(1.8)
    assert frames[-1].t_capture - frames[0].t_capture == pytest.approx(0.9, abs=0.15)


def test_missing_and_corrupt_files_are_clear_errors(tmp_path):
    with pytest.raises(SourceError, match=r"camera c1: video file not found \(/nonexistent/x.avi\)"):
        OpenCvSource("c1", "/nonexistent/x.avi").open()
    junk = tmp_path / "junk.avi"
    junk.write_bytes(np.random.default_rng(1).integers(0, 255, 50_000, dtype=np.uint8).tobytes())
    with pytest.raises(SourceError, match="camera c2: (cannot open or decode the video file|no decodable frame)"):
        src = OpenCvSource("c2", str(junk), pace=False)
        src.open()
        src.read(1.0)
    with pytest.raises(SourceError, match="camera c3: no such video device"):
        OpenCvSource("c3", "/dev/video99").open()


def test_an_unreachable_rtsp_camera_fails_within_its_timeout():
    import time

    t0 = time.monotonic()
    with pytest.raises(SourceError, match=r"camera c4: cannot connect \(rtsp://127.0.0.1:9/stream\)"):
        OpenCvSource("c4", "rtsp://127.0.0.1:9/stream", open_timeout_s=2.0).open()
    assert time.monotonic() - t0 < 10

"""Frame sources behind one interface: OpenCV ``VideoCapture`` (files, RTSP, HTTP, V4L2) on any host,
``jetson_utils.videoSource`` (CSI, V4L2, RTSP, files, hardware decoding) on a Jetson.

``FrameSource.read(timeout_s)`` returns the next ``Frame``, ``None`` when nothing arrived in time (a live
camera that is slow), and raises ``SourceError`` when the source is broken (cannot open, disconnected,
undecodable, ended). The caller (``service.CameraWorker``) reconnects with backoff and reports which camera
failed in health. Frames stay in memory: nothing here writes or sends them.

Frame times: ``t_media`` is the frame's time on the source's own timeline (for a file: frame number ÷ fps,
continuing across loops, so dwell seconds on a clip are exact and repeatable; for a live camera: the
monotonic capture time); ``t_capture`` is ``time.perf_counter()`` when the frame reached this process (the
start of the latency measurement).

Invariants: ``jetson_utils`` is imported only inside ``JetsonSource``; ``cv2`` only inside ``OpenCvSource``.
"""
from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from ..core.errors import UpstreamRetryable


class SourceError(UpstreamRetryable):
    """A camera cannot deliver frames (the message names the camera and the reason)."""

    code = "camera"


@dataclass
class Frame:
    image: np.ndarray  # H×W×3 uint8
    color: str  # "bgr" (OpenCV) or "rgb" (jetson_utils)
    t_media: float
    t_capture: float
    index: int
    native: Any = None  # the jetson_utils cudaImage, for a zero-copy detectNet


class FrameSource(Protocol):
    camera: str
    url: str

    def open(self) -> None:
        """Raises SourceError."""

    def read(self, timeout_s: float) -> Frame | None:
        """The next frame, None on timeout. Raises SourceError."""

    def close(self) -> None: ...


def parse_source(url: str) -> tuple[str, str]:
    """``(scheme, target)``: ``file``/path, ``v4l2``/device, or the URL's scheme and the URL itself."""
    if url.startswith("/"):
        return ("v4l2", url) if url.startswith("/dev/video") else ("file", url)
    scheme, _, rest = url.partition("://")
    if scheme == "file":
        return "file", rest if rest.startswith("/") else "/" + rest
    if scheme == "v4l2":
        return "v4l2", rest if rest.startswith("/") else "/" + rest
    return scheme, url


class OpenCvSource:
    """OpenCV ``VideoCapture``; files may loop and are paced like a live camera (``speed`` × real time)."""

    def __init__(self, camera: str, url: str, *, loop: bool = False, speed: float = 1.0, pace: bool = True,
                 open_timeout_s: float = 5.0, read_timeout_s: float = 5.0, stop: threading.Event | None = None) -> None:
        self.camera, self.url = camera, url
        self.scheme, self.target = parse_source(url)
        self.loop, self.speed, self.pace = loop, speed, pace
        self.open_timeout_s, self.read_timeout_s = open_timeout_s, read_timeout_s
        self._stop = stop or threading.Event()
        self._cap = None
        self._index = 0  # frames delivered, across loops
        self._fps = 0.0
        self._t0: float | None = None  # perf_counter of media time 0 (pacing)

    def _fail(self, reason: str) -> SourceError:
        return SourceError(f"camera {self.camera}: {reason} ({self.url})")

    def open(self) -> None:
        import cv2

        self.close()
        if self.scheme == "file":
            if not os.path.isfile(self.target):
                raise self._fail("video file not found")
            cap = cv2.VideoCapture(self.target)
        elif self.scheme == "v4l2":
            if not os.path.exists(self.target):
                raise self._fail("no such video device")
            cap = cv2.VideoCapture(self.target, cv2.CAP_V4L2)
        else:
            params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, int(self.open_timeout_s * 1000),
                      cv2.CAP_PROP_READ_TIMEOUT_MSEC, int(self.read_timeout_s * 1000)]
            cap = cv2.VideoCapture(self.target, cv2.CAP_FFMPEG, params)
        if not cap.isOpened():
            cap.release()
            what = "cannot open or decode the video file" if self.scheme == "file" else "cannot connect"
            raise self._fail(what)
        self._cap = cap
        self._pos_frames = cv2.CAP_PROP_POS_FRAMES
        fps = cap.get(cv2.CAP_PROP_FPS)
        self._fps = fps if 0 < fps < 1000 else 0.0
        if self.scheme == "file" and self._fps <= 0:
            self.close()
            raise self._fail("video file has no frame rate")
        if self.scheme == "file" and self._index == 0:
            self._t0 = None

    @property
    def fps(self) -> float:
        return self._fps

    def read(self, timeout_s: float) -> Frame | None:
        if self._cap is None:
            raise self._fail("not open")
        ok, image = self._cap.read()
        if not ok or image is None:
            if self.scheme == "file" and self.loop and self._index > 0:
                self._cap.set(self._pos_frames, 0)  # back to the first frame; media time runs on
                ok, image = self._cap.read()
            if not ok or image is None:
                if self.scheme == "file":
                    raise self._fail("end of video file" if self._index > 0 else "no decodable frame in the video file")
                raise self._fail("stream lost")
        now = time.perf_counter()
        if self.scheme == "file":
            t_media = self._index / self._fps
            if self.pace:
                if self._t0 is None:
                    self._t0 = now - t_media / self.speed
                due = self._t0 + t_media / self.speed
                if due > now and self._stop.wait(due - now):
                    return None
                now = time.perf_counter()
        else:
            t_media = time.monotonic()
        frame = Frame(image, "bgr", t_media, now, self._index)
        self._index += 1
        return frame

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None


class JetsonSource:
    """``jetson_utils.videoSource``: ``csi://0``, ``v4l2:///dev/video0``, ``rtsp://…``, ``file://…``.

    ``Capture()`` returns None on timeout; a source that stops streaming is an error. Verified only on
    Jetson hardware (JetPack 6); on other hosts the import fails with a clear ``SourceError``.
    """

    def __init__(self, camera: str, url: str, *, width: int, height: int, loop: bool = False,
                 read_timeout_s: float = 5.0) -> None:
        self.camera, self.url = camera, url
        self.width, self.height, self.loop = width, height, loop
        self.read_timeout_s = read_timeout_s
        self._src = None
        self._index = 0
        self._ju = None

    def argv(self) -> list[str]:
        """videoSource options (pure, unit-tested): size hint and looping for files."""
        args = [f"--input-width={self.width}", f"--input-height={self.height}"]
        if self.url.startswith("file://") and self.loop:
            args.append("--input-loop=-1")
        return args

    def open(self) -> None:
        try:
            import jetson_utils
        except ImportError as e:
            raise SourceError(f"camera {self.camera}: backend 'jetson' needs jetson_utils (JetPack): {e}") from e
        self._ju = jetson_utils
        try:
            self._src = jetson_utils.videoSource(self.url, argv=self.argv())
        except Exception as e:  # jetson_utils raises plain Exception for every failure
            raise SourceError(f"camera {self.camera}: cannot open ({self.url}): {e}") from e

    def read(self, timeout_s: float) -> Frame | None:
        if self._src is None:
            raise SourceError(f"camera {self.camera}: not open ({self.url})")
        try:
            img = self._src.Capture(format="rgb8", timeout=int(timeout_s * 1000))
        except Exception as e:
            raise SourceError(f"camera {self.camera}: capture failed ({self.url}): {e}") from e
        if img is None:
            if not self._src.IsStreaming():
                raise SourceError(f"camera {self.camera}: stream ended ({self.url})")
            return None
        now = time.perf_counter()
        self._ju.cudaDeviceSynchronize()
        array = self._ju.cudaToNumpy(img)  # mapped memory: no copy
        frame = Frame(array, "rgb", time.monotonic(), now, self._index, native=img)
        self._index += 1
        return frame

    def close(self) -> None:
        if self._src is not None:
            try:
                self._src.Close()
            finally:
                self._src = None


def open_source(cam, stop: threading.Event | None = None, pace: bool = True) -> FrameSource:
    """The source for a ``CameraConfig`` (not yet opened)."""
    if cam.backend == "jetson":
        return JetsonSource(cam.id, cam.source, width=cam.width, height=cam.height, loop=cam.loop,
                            read_timeout_s=cam.read_timeout_s)
    return OpenCvSource(cam.id, cam.source, loop=cam.loop, speed=cam.speed, pace=pace,
                        open_timeout_s=cam.open_timeout_s, read_timeout_s=cam.read_timeout_s, stop=stop)

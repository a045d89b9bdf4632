"""The maintenance page's view of the cameras: ``cameras`` (state, FPS, frame size, zones in frame pixels)
and ``snapshot`` (the latest frame, privacy-blurred by ``snapshot.py``, zones drawn, JPEG).

Served on ``/run/endcap/vision.rpc`` by its own thread (``server`` run by ``core.bus.RpcThread``). The camera threads only keep a
reference to their latest frame (``CameraWorker.latest``); all image work happens here, on request, so
the frame loop never waits on it. The JPEG goes only to the asking process over the local socket.
"""
from __future__ import annotations

import time
from typing import Sequence

import numpy as np

from ..core import messages as m
from ..core.bus import RpcServer, contained
from ..core.errors import EndcapError
from . import snapshot


def zones_in_frame(cam, width: int, height: int) -> list[m.ZoneShape]:
    """The camera's zones (configured in ``cam.width``×``cam.height``) in pixels of a ``width``×``height`` frame."""
    sx, sy = width / cam.width, height / cam.height
    return [m.ZoneShape(z.id, [(round(x * sx, 1), round(y * sy, 1)) for x, y in z.polygon]) for z in cam.zones]


def camera_state(worker, now_mono: float) -> m.CameraState:
    cam, latest = worker.cam, worker.latest
    h, w = latest.image.shape[:2] if latest is not None else (cam.height, cam.width)
    return m.CameraState(camera=cam.id, ok=worker.problem(now_mono) is None, fps=round(worker.stats.fps(), 2),
                         frames=worker.stats.frames, last_frame_at=latest.at if latest is not None else None,
                         width=int(w), height=int(h), zones=zones_in_frame(cam, int(w), int(h)))


def _boxes_in_frame(boxes: Sequence, sx: float, sy: float) -> list[tuple[float, float, float, float]]:
    return [(float(b[0]) * sx, float(b[1]) * sy, float(b[2]) * sx, float(b[3]) * sy) for b in boxes]


class VisionMaint:
    def __init__(self, workers: list) -> None:
        self.workers = {w.cam.id: w for w in workers}

    def cameras(self, _req: m.Empty) -> m.CamerasReply:
        now = time.monotonic()
        return m.CamerasReply([camera_state(w, now) for w in self.workers.values()])

    def snapshot(self, req: m.SnapshotRequest) -> m.Snapshot:
        worker = self.workers.get(req.camera)
        if worker is None:
            known = ", ".join(self.workers) or "none"
            raise EndcapError(f"snapshot: no camera {req.camera[:64]!r} (configured: {known})", code="unknown_camera")
        latest = worker.latest
        if latest is None:
            raise EndcapError(f"snapshot: camera {req.camera}: no frame processed yet", code="no_frame")
        cam = worker.cam
        h, w = latest.image.shape[:2]
        sx, sy = w / cam.width, h / cam.height
        boxes = _boxes_in_frame(np.concatenate([np.asarray(latest.detections, np.float32).reshape(-1, 4),
                                                np.asarray(latest.tracks, np.float32).reshape(-1, 4)]), sx, sy)
        zones = [(z.name, z.polygon) for z in zones_in_frame(cam, w, h)]
        try:
            jpeg = snapshot.encode_jpeg(snapshot.render(latest.image, latest.color, zones, boxes))
        except Exception as e:  # OpenCV errors, an unexpected frame layout: an answer, not a dead RPC thread
            raise EndcapError(f"snapshot: camera {req.camera}: cannot render its {latest.color} frame of shape "
                              f"{tuple(latest.image.shape)}: {type(e).__name__}: {e}"[:500], code="encode") from e
        return m.Snapshot(camera=cam.id, jpeg=jpeg, taken_at=latest.at)


def server(address: str, maint: VisionMaint) -> RpcServer:
    """The listening RPC server for ``cameras`` and ``snapshot`` (run by ``core.bus.RpcThread``); an
    unexpected failure in either is an error reply, never a dead RPC thread."""
    return RpcServer(address, "vision", {
        "cameras": (m.Empty, contained("cameras", maint.cameras)),
        "snapshot": (m.SnapshotRequest, contained("snapshot", maint.snapshot)),
    }, send_timeout_ms=2000)

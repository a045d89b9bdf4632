"""The technician's debug view: each camera's latest frame, **blurred**, with zones, boxes and track ids
drawn over it, served as MJPEG on a loopback address only. Off by default.

This is the one exception to "frames never leave the vision process", and it says so on every image
(a red banner). It holds only the latest frame of each camera in memory, renders only while someone
is watching, writes nothing to disk and is never bound to a network address (the config refuses
anything but loopback). Blurring happens before anything is drawn or encoded: no sharp pixel of a
frame is ever served, so faces are unrecognisable.

Routes: ``/`` (a page with one stream per camera), ``/<camera>.mjpg`` (the stream, ≤ 5 fps),
``/<camera>.jpg`` (one image).
"""
from __future__ import annotations

import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np

log = logging.getLogger(__name__)

BANNER = "DEBUG VIEW - technician only - blurred - not recorded, not sent off this device"
BLUR_FACTOR = 16  # the frame is shrunk by this much before it is enlarged again


def blur(image: np.ndarray) -> np.ndarray:
    """Pixelate then smooth: nothing smaller than ~BLUR_FACTOR pixels survives (faces, text)."""
    import cv2

    h, w = image.shape[:2]
    small = cv2.resize(image, (max(1, w // BLUR_FACTOR), max(1, h // BLUR_FACTOR)), interpolation=cv2.INTER_AREA)
    return cv2.GaussianBlur(cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR), (0, 0), BLUR_FACTOR / 3)


def annotate(image: np.ndarray, color: str, zones, tracks, scale: tuple[float, float]) -> np.ndarray:
    """The served image: blurred frame (BGR), zone outlines, person boxes, the banner."""
    import cv2

    out = blur(image if color == "bgr" else image[:, :, ::-1])
    out = np.ascontiguousarray(out)
    sx, sy = scale  # zone coordinates -> frame pixels
    for z in zones:
        pts = np.array([[x * sx, y * sy] for x, y in z.polygon], np.int32)
        cv2.polylines(out, [pts], True, (0, 200, 255), 2)
        cv2.putText(out, z.id, tuple(int(v) for v in pts[0]), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 200, 255), 2)
    for tr in tracks:
        x1, y1, x2, y2 = (int(v) for v in (tr.box[0] * sx, tr.box[1] * sy, tr.box[2] * sx, tr.box[3] * sy))
        cv2.rectangle(out, (x1, y1), (x2, y2), (60, 220, 60), 2)
        cv2.putText(out, f"#{tr.track_id} {tr.score:.2f}", (x1, max(12, y1 - 4)), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (60, 220, 60), 1)
    h, w = out.shape[:2]
    bar = max(18, h // 20)
    out[:bar] = (0, 0, 200)
    cv2.putText(out, BANNER, (6, bar - 5), cv2.FONT_HERSHEY_SIMPLEX, bar / 40, (255, 255, 255), 1, cv2.LINE_AA)
    return out


class DebugView:
    def __init__(self, bind: str, port: int, zones_by_camera: dict, size_by_camera: dict) -> None:
        self.bind, self.port = bind, port
        self._zones = zones_by_camera
        self._size = size_by_camera
        self._latest: dict[str, tuple] = {}
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._closed = threading.Event()

    def offer(self, camera: str, frame, tracks) -> None:
        """Keep a reference to the newest frame of ``camera`` (no copy, no encoding on the hot path)."""
        with self._lock:
            self._latest[camera] = (frame.image, frame.color, list(tracks))

    def jpeg(self, camera: str) -> bytes | None:
        import cv2

        with self._lock:
            item = self._latest.get(camera)
        if item is None:
            return None
        image, color, tracks = item
        w, h = self._size[camera]
        scale = (image.shape[1] / w, image.shape[0] / h)
        ok, buf = cv2.imencode(".jpg", annotate(image, color, self._zones[camera], tracks, scale), [cv2.IMWRITE_JPEG_QUALITY, 70])
        return buf.tobytes() if ok else None

    def start(self) -> None:
        view = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, fmt, *args):  # no per-request logging of a technician's browsing
                return

            def _send(self, code: int, ctype: str, body: bytes) -> None:
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Cache-Control", "no-store")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):  # noqa: N802 - http.server's naming
                path = self.path.split("?")[0].strip("/")
                cams = list(view._zones)
                if path == "":
                    imgs = "".join(f'<h2>{c}</h2><img src="/{c}.mjpg" alt="{c}">' for c in cams)
                    page = (f"<!doctype html><title>Endcap vision debug view</title><p><b>{BANNER}</b></p>{imgs}")
                    return self._send(200, "text/html; charset=utf-8", page.encode())
                cam, _, ext = path.rpartition(".")
                if cam not in cams or ext not in ("jpg", "mjpg"):
                    return self._send(404, "text/plain", b"no such camera\n")
                if ext == "jpg":
                    data = view.jpeg(cam)
                    return self._send(200, "image/jpeg", data) if data else self._send(503, "text/plain", b"no frame yet\n")
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                try:
                    while not view._closed.wait(0.2):  # ≤ 5 fps until the service stops
                        data = view.jpeg(cam)
                        if data:
                            self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: " + str(len(data)).encode()
                                             + b"\r\n\r\n" + data + b"\r\n")
                except (BrokenPipeError, ConnectionResetError):
                    return

        self._server = ThreadingHTTPServer((self.bind, self.port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="vision-debug-view", daemon=True)
        self._thread.start()
        log.warning("debug view ON at http://%s:%s/ (blurred frames, technician only)", self.bind, self.port)

    def close(self) -> None:
        self._closed.set()
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        with self._lock:
            self._latest.clear()

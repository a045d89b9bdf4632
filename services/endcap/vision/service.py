"""The ``vision`` service: per camera, frames -> people -> zone events on ``vision.zone``.

Threads: per camera a *grabber* (reads the source into a one-frame slot, so a slow detector drops stale
frames instead of falling behind a live camera; reconnects with full-jitter backoff when the camera
fails) and a *processor* (detector -> tracker -> zones -> publish). The main thread publishes
``vision.health`` and pings the watchdog. ``vision-rpc`` answers the maintenance page's ``cameras`` and
``snapshot`` (``maint.py``; the privacy-blurred snapshot is the second exception to "frames never leave
this process", see below).

Health is ok only while every camera processes frames (a frame within ``stale_after_s``); otherwise its
error names the camera(s) and why (cannot connect, file not found, no frame for N s, detector failed).
Counters carry per-camera telemetry (latency p50/p99 capture -> event published, FPS, dropped) and the
per-zone aggregates (visits, dwell and focus seconds) — the only vision data that may leave the device.

Frames never leave this process: no disk, no network; the two exceptions are the loopback-only,
blurred, off-by-default technician debug view (``debugview.py``) and the maintenance ``snapshot`` RPC
(person boxes pixelated and the whole frame reduced before encoding, ``snapshot.py``; answered on the
local RPC socket only). A bad config stops the service before READY with every problem listed; camera
and model failures never stop it (health says what is wrong).
"""
from __future__ import annotations

import logging
import random
import threading
import time
from dataclasses import dataclass
from typing import Any

from ..core import messages as m
from ..core.backoff import Backoff
from ..core.bus import Publisher, RpcThread
from ..core.errors import BusError, EndcapError
from ..core.health import HealthPublisher, HealthState
from ..core.runner import ServiceContext
from .config import CameraConfig, VisionConfig
from .detectors.api import DetectorError
from .sources import SourceError, open_source
from .telemetry import CameraStats, ZoneTotals

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Latest:
    """A camera's newest processed frame; boxes in camera (zone) coordinates; ``at`` wall time."""

    image: Any
    color: str
    detections: Any
    tracks: list
    at: float


class CameraWorker:
    """One camera's grabber and processor threads and what they report (see the module docstring)."""

    def __init__(self, cam: CameraConfig, cfg: VisionConfig, emit, stop: threading.Event, debug=None) -> None:
        self.cam, self.cfg, self._emit, self._stop = cam, cfg, emit, stop
        self._debug = debug
        self.stats = CameraStats()
        self.totals = {z.id: ZoneTotals() for z in cam.zones}
        self.last_frame_at: float | None = None  # monotonic time of the last processed frame
        self.error: EndcapError | None = None  # the latest failure, cleared by the next processed frame
        self.crash: BaseException | None = None  # a bug in a thread: the service must exit
        self.latest: Latest | None = None  # the newest processed frame, by reference (maint.py encodes on request)
        self._slot = None
        self._cond = threading.Condition()
        self._backoff = Backoff(cfg.reconnect_base_s, cfg.reconnect_cap_s)
        self._rng = random.Random()
        self._threads = [threading.Thread(target=self._guard, args=(f,), name=f"vision-{cam.id}-{f.__name__.strip('_')}",
                                          daemon=True) for f in (self._grab, self._process)]

    def start(self) -> None:
        for t in self._threads:
            t.start()

    def join(self, timeout_s: float) -> None:
        with self._cond:
            self._cond.notify_all()
        for t in self._threads:
            t.join(timeout_s)

    def problem(self, now_mono: float) -> str | None:
        """Why this camera is not healthy now, or None."""
        if self.last_frame_at is not None and now_mono - self.last_frame_at <= self.cfg.stale_after_s:
            return None
        if self.error is not None:
            return self.error.message
        if self.last_frame_at is None:
            return f"camera {self.cam.id}: no frame processed yet"
        return f"camera {self.cam.id}: no frame for {now_mono - self.last_frame_at:.0f} s"

    def _guard(self, fn) -> None:
        try:
            fn()
        except BaseException as e:  # surfaced by the main loop, which exits non-zero (systemd restarts)
            self.crash = e
            self._stop.set()

    def _fail(self, err: EndcapError, attempt: int) -> None:
        self.error = err
        delay = self._backoff.delay(attempt, self._rng.random())
        log.warning("%s; retrying in %.1f s", err, delay)
        self._stop.wait(delay)

    def _grab(self) -> None:
        attempt = 0
        period = 1.0 / self.cam.fps
        next_due = None
        offset, last_t = 0.0, None  # a reopened file starts at 0 again: keep the pipeline's clock monotonic
        while not self._stop.is_set():
            src = open_source(self.cam, stop=self._stop)
            try:
                src.open()
                log.info("camera %s: connected to %s", self.cam.id, self.cam.source)
                while not self._stop.is_set():
                    frame = src.read(self.cam.read_timeout_s)
                    if frame is None:
                        continue
                    attempt = 0
                    if last_t is not None and frame.t_media + offset <= last_t:
                        offset = last_t + period - frame.t_media
                    frame.t_media += offset
                    last_t = frame.t_media
                    if next_due is not None and frame.t_media < next_due - period / 2:
                        self.stats.skipped += 1
                        continue
                    next_due = max(frame.t_media, next_due if next_due is not None else frame.t_media) + period
                    with self._cond:
                        if self._slot is not None:
                            self.stats.dropped += 1
                        self._slot = frame
                        self._cond.notify()
            except SourceError as e:
                attempt += 1
                self.stats.reconnects += 1
                next_due = None
                self._fail(e, attempt)
            finally:
                src.close()

    def _take(self):
        with self._cond:
            while self._slot is None and not self._stop.is_set():
                self._cond.wait(0.5)
            frame, self._slot = self._slot, None
            return frame

    def _process(self) -> None:
        from .detectors import api
        from .pipeline import CameraPipeline

        pipeline, attempt, last_t = None, 0, 0.0
        while not self._stop.is_set():
            if pipeline is None:
                try:
                    pipeline = CameraPipeline(self.cam, self.cfg, api.create(self.cfg.detector))
                except DetectorError as e:
                    attempt += 1
                    self._fail(DetectorError(f"camera {self.cam.id}: {e}"), attempt)
                    continue
            frame = self._take()
            if frame is None:
                continue
            t_start = time.perf_counter()
            res = pipeline.process(frame)
            self._emit(self, res.updates)
            t_done = time.perf_counter()
            self.stats.record(t_capture=frame.t_capture, t_detected=t_start + res.detect_s, t_done=t_done,
                              detect_s=res.detect_s, track_s=res.track_s, zones_s=res.zones_s, events=len(res.updates),
                              people=len(res.tracks))
            self.last_frame_at, self.error, last_t = time.monotonic(), None, frame.t_media
            self.latest = Latest(frame.image, frame.color, res.detections.boxes, [tr.box for tr in res.tracks], time.time())
            if self._debug is not None:
                self._debug.offer(self.cam.id, frame, res.tracks)
        if pipeline is not None:
            self._emit(self, pipeline.flush(last_t))  # close open visits: consumers see their exits

    def counters(self) -> dict[str, float]:
        out = self.stats.counters(self.cam.id)
        out[f"camera.{self.cam.id}.ok"] = 0.0 if self.problem(time.monotonic()) else 1.0
        for zid, tot in self.totals.items():
            out.update(tot.counters(self.cam.id, zid))
        return out


class _Emitter:
    """Publishes zone updates as ``ZoneEvent``s from any camera thread (one lock around the socket)."""

    def __init__(self, pub: Publisher) -> None:
        self._pub = pub
        self._lock = threading.Lock()

    def __call__(self, worker: CameraWorker, updates) -> None:
        for u in updates:
            if u.kind == "exit" and u.zone in worker.totals:
                worker.totals[u.zone].add_exit(u.dwell_s, u.focus)
            ev = m.ZoneEvent(worker.cam.id, u.zone, u.track_id, u.kind, u.dwell_s, u.focus, u.confidence, time.time())
            try:
                with self._lock:
                    self._pub.publish("vision.zone", ev)
            except BusError as e:  # pub/sub is lossy by design; the next dwell supersedes this one
                log.warning("vision.zone not published: %s", e)


def main(ctx: ServiceContext) -> None:
    cfg: VisionConfig = ctx.config
    pub = Publisher(ctx.paths.pub_address("vision"), "vision")
    health = HealthState("vision", stale_after_s=cfg.stale_after_s)
    health_pub = HealthPublisher(health, pub, cfg.health_interval_s)
    debug = None
    if cfg.debug_view.enabled:
        from .debugview import DebugView
        from .pipeline import zones_of

        debug = DebugView(cfg.debug_view.bind, cfg.debug_view.port, {c.id: zones_of(c) for c in cfg.cameras},
                          {c.id: (c.width, c.height) for c in cfg.cameras})
        debug.start()
    emit = _Emitter(pub)
    workers = [CameraWorker(cam, cfg, emit, ctx.stop, debug) for cam in cfg.cameras]
    for w in workers:
        w.start()
    from . import maint

    try:
        rpc = RpcThread("vision-rpc", maint.server(ctx.paths.rpc_address("vision"), maint.VisionMaint(workers)), ctx.stop)
    except BaseException:
        ctx.stop.set()
        for w in workers:
            w.join(5.0)
        if debug is not None:
            debug.close()
        pub.close()
        raise
    ctx.ready(f"{len(workers)} camera(s), detector {cfg.detector.type}")
    try:
        while not ctx.stop.wait(0.25):
            ctx.alive()
            rpc.check()  # a dead maintenance RPC thread: exit non-zero, systemd restarts vision
            _check_health(workers, health, time.time(), time.monotonic())
            health_pub.maybe_publish(time.time())
    finally:
        ctx.stop.set()
        for w in workers:
            w.join(5.0)
        rpc.close()
        if debug is not None:
            debug.close()
        pub.close()
    crashed = [w.crash for w in workers if w.crash is not None]
    if crashed:
        raise RuntimeError(f"a camera thread failed: {crashed[0]!r}") from crashed[0]


def _check_health(workers: list[CameraWorker], health: HealthState, now: float, now_mono: float) -> None:
    problems = [p for p in (w.problem(now_mono) for w in workers) if p]
    for w in workers:
        for k, v in w.counters().items():
            health.set(k, v)
    if problems:
        codes = [w.error.code for w in workers if w.error is not None]
        health.failure(EndcapError("; ".join(problems), code=codes[0] if codes else "camera"), now)
    else:
        health.success(now)

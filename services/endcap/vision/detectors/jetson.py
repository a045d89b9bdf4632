"""``jetson``: NVIDIA jetson-inference ``detectNet`` (TensorRT on the Jetson's GPU).

Either a built-in network (``network``, e.g. ``ssd-mobilenet-v2``, COCO classes) or a custom ONNX model
(``model`` + ``labels`` + blob names, as exported by jetson-inference's ``train_ssd.py``). People are the
classes whose label is in ``person_labels``, resolved once from the network's own class list.

Frames from ``JetsonSource`` carry their ``cudaImage`` (``frame.native``) and are detected without a copy;
numpy frames (OpenCV sources) are uploaded with ``cudaFromNumpy``.

``jetson_inference``/``jetson_utils`` are imported only in ``JetsonDetector.__init__``. The pure parts —
``detectnet_args`` (config -> constructor arguments) and ``to_detections`` (detectNet results -> our arrays)
— are unit-tested anywhere; the GPU path itself is verified only on Jetson hardware (JetPack 6).
"""
from __future__ import annotations

from typing import Any, Iterable, Sequence

import numpy as np

from .api import DetectorError, Detections


def detectnet_args(cfg) -> tuple[tuple, dict[str, Any]]:
    """``(args, kwargs)`` for ``jetson_inference.detectNet`` from a ``DetectorConfig``.

    A custom model goes through ``argv`` (the form every jetson-inference release accepts); a built-in
    network by name. ``argv[0]`` is the program name, as detectNet's command-line parser expects.
    """
    p = cfg.jetson
    if p.model:
        argv = ["endcap-vision", f"--model={p.model}", f"--input-blob={p.input_blob}", f"--output-cvg={p.output_cvg}",
                f"--output-bbox={p.output_bbox}", f"--threshold={cfg.threshold}"]
        if p.labels:
            argv.insert(2, f"--labels={p.labels}")
        return (), {"argv": argv, "threshold": float(cfg.threshold)}
    return (), {"network": p.network, "threshold": float(cfg.threshold)}


def person_class_ids(labels: Sequence[str], wanted: Iterable[str]) -> set[int]:
    """Indices of ``labels`` that name a person (case-insensitive match against ``wanted``)."""
    w = {x.strip().lower() for x in wanted}
    return {i for i, label in enumerate(labels) if label.strip().lower() in w}


def to_detections(results: Iterable[Any], person_ids: set[int], width: int, height: int,
                  threshold: float, min_height: float) -> Detections:
    """detectNet ``Detection`` objects (``ClassID``, ``Confidence``, ``Left``, ``Top``, ``Right``, ``Bottom``)
    -> person ``Detections`` in pixels, filtered like every other plugin."""
    rows = [(d.Left, d.Top, d.Right, d.Bottom, d.Confidence) for d in results if int(d.ClassID) in person_ids]
    if not rows:
        return Detections.empty()
    a = np.asarray(rows, np.float32)
    return Detections.of(a[:, :4], np.clip(a[:, 4], 0.0, 1.0)).filtered(threshold, min_height, width, height)


class JetsonDetector:
    def __init__(self, cfg) -> None:
        try:
            import jetson_inference
            import jetson_utils
        except ImportError as e:
            raise DetectorError(f"detector 'jetson' needs jetson-inference (JetPack) on a Jetson: {e}") from e
        self._ju = jetson_utils
        self.threshold, self.min_height = cfg.threshold, cfg.min_height
        args, kwargs = detectnet_args(cfg)
        try:
            self._net = jetson_inference.detectNet(*args, **kwargs)
        except Exception as e:  # detectNet raises plain Exception for every load failure
            raise DetectorError(f"detectNet could not load {kwargs.get('network') or cfg.jetson.model}: {e}") from e
        labels = [self._net.GetClassDesc(i) for i in range(self._net.GetNumClasses())]
        self.person_ids = person_class_ids(labels, cfg.jetson.person_labels)
        if not self.person_ids:
            raise DetectorError(f"detectNet model has no class named {cfg.jetson.person_labels} (classes: {labels[:10]}…)")

    def detect(self, frame) -> Detections:
        h, w = frame.image.shape[:2]
        img = frame.native
        if img is None:
            rgb = frame.image if frame.color == "rgb" else np.ascontiguousarray(frame.image[:, :, ::-1])
            img = self._ju.cudaFromNumpy(rgb)
        results = self._net.Detect(img, overlay="none")
        return to_detections(results, self.person_ids, w, h, self.threshold, self.min_height)

    def close(self) -> None:
        self._net = None

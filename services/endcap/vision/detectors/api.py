"""The detector plugin contract: frames in, person boxes out, the same numpy arrays from every backend.

A plugin is a class with ``__init__(cfg: DetectorConfig)`` and ``detect(frame) -> Detections``, found in
``REGISTRY`` by the config's ``type`` and imported only when selected (so ``jetson_inference`` is
imported on a Jetson only). ``Detections`` are people only, in the frame's pixel coordinates, with
scores in [0, 1]; plugins apply ``threshold`` and ``min_height`` themselves.

Errors: an unknown type is a ``ConfigError`` naming it; a plugin that cannot load its model raises
``DetectorError`` (the service reports it in health and retries; it never crash-loops on it).
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from ...core.errors import ConfigError, EndcapError

REGISTRY: dict[str, str] = {
    "ssd_cpu": "endcap.vision.detectors.ssd_cpu:SsdCpuDetector",
    "jetson": "endcap.vision.detectors.jetson:JetsonDetector",
    "hog": "endcap.vision.detectors.hog:HogDetector",
}


class DetectorError(EndcapError):
    """A detector cannot load or run its model (missing/corrupt file, no GPU runtime)."""

    code = "detector"


@dataclass(frozen=True)
class Detections:
    boxes: np.ndarray  # (N, 4) float32: x1, y1, x2, y2 in pixels
    scores: np.ndarray  # (N,) float32 in [0, 1]

    @classmethod
    def empty(cls) -> "Detections":
        return cls(np.zeros((0, 4), np.float32), np.zeros((0,), np.float32))

    @classmethod
    def of(cls, boxes, scores) -> "Detections":
        return cls(np.asarray(boxes, np.float32).reshape(-1, 4), np.asarray(scores, np.float32).reshape(-1))

    def __len__(self) -> int:
        return len(self.scores)

    def filtered(self, threshold: float, min_height: float, width: int, height: int) -> "Detections":
        """Clip to the frame, then keep boxes scoring ≥ threshold and at least ``min_height`` tall."""
        if not len(self):
            return self
        b = self.boxes.copy()
        np.clip(b[:, 0::2], 0, width, out=b[:, 0::2])
        np.clip(b[:, 1::2], 0, height, out=b[:, 1::2])
        keep = (self.scores >= threshold) & ((b[:, 3] - b[:, 1]) >= min_height) & ((b[:, 2] - b[:, 0]) >= 1)
        return Detections(b[keep], self.scores[keep])

    def scaled(self, sx: float, sy: float) -> "Detections":
        if sx == 1.0 and sy == 1.0:
            return self
        return Detections(self.boxes * np.array([sx, sy, sx, sy], np.float32), self.scores)


class Detector(Protocol):
    def detect(self, frame) -> Detections: ...

    def close(self) -> None: ...


def create(cfg) -> Detector:
    """The plugin named by ``cfg.type``, constructed with ``cfg``.

    Raises:
        ConfigError: unknown type.
        DetectorError: the plugin could not load its model or runtime.
    """
    ref = REGISTRY.get(cfg.type)
    if ref is None:
        raise ConfigError(f"unknown detector type {cfg.type!r}",
                          [f"vision.detector.type: unknown detector type {cfg.type!r}; known: {', '.join(REGISTRY)}"])
    module, _, cls = ref.partition(":")
    return getattr(importlib.import_module(module), cls)(cfg)

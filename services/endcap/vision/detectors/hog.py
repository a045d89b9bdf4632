"""``hog``: OpenCV's built-in HOG + linear SVM people detector (Dalal & Triggs, INRIA person model).

Not for production (slow, misses partly hidden and small people); it is the anchor the benchmarks measure
``ssd_cpu`` against in the same run, and a detector that works with nothing but OpenCV installed.
SVM margins are mapped to [0, 1] with a logistic (margin 0 -> 0.5) so every plugin reports comparable
scores; ``threshold`` applies to that.
"""
from __future__ import annotations

import numpy as np

from .api import Detections


class HogDetector:
    def __init__(self, cfg) -> None:
        import cv2

        self.threshold, self.min_height = cfg.threshold, cfg.min_height
        self.params = cfg.hog
        self._hog = cv2.HOGDescriptor()
        self._hog.setSVMDetector(cv2.HOGDescriptor_getDefaultPeopleDetector())

    def detect(self, frame) -> Detections:
        image = frame.image
        h, w = image.shape[:2]
        s = self.params.win_stride
        rects, weights = self._hog.detectMultiScale(image, hitThreshold=self.params.hit_threshold, winStride=(s, s),
                                                    padding=(8, 8), scale=self.params.scale)
        if len(rects) == 0:
            return Detections.empty()
        r = np.asarray(rects, np.float32).reshape(-1, 4)
        boxes = np.stack([r[:, 0], r[:, 1], r[:, 0] + r[:, 2], r[:, 1] + r[:, 3]], axis=1)
        scores = 1.0 / (1.0 + np.exp(-np.asarray(weights, np.float32).reshape(-1)))
        return Detections.of(boxes, scores).filtered(self.threshold, self.min_height, w, h)

    def close(self) -> None:
        self._hog = None

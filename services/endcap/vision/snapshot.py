"""The maintenance page's camera snapshot: one frame, made unrecognisable, with the zones drawn (pure image work).

Two independent protections, both always applied, before anything is drawn or encoded:
1. every detected person box (padded by ``BOX_PAD`` on each side) is pixelated to at most
   ``PERSON_BLOCKS`` blocks across, then smoothed: body and face become a few flat patches;
2. the whole frame is reduced to ``DETAIL_WIDTH`` pixels across (area averaging) and enlarged again to
   the output size (at most ``MAX_WIDTH``): so a face the detector missed is still only a few pixels wide
   (a 640-pixel-wide camera keeps one pixel in four; a 1920-pixel one, one in twelve).
Zone outlines and names are drawn afterwards, sharp, on the output image (in output pixels), then the
image is JPEG-encoded with OpenCV. The input frame is never modified (the camera thread still owns it).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

DETAIL_WIDTH = 160  # pixels across the frame that survive the global reduction
MAX_WIDTH = 320  # width of the served image (zones and names drawn at this size)
PERSON_BLOCKS = 4  # a person box keeps at most this many blocks across (and twice as many down)
BOX_PAD = 0.15
ZONE_BGR = (0, 200, 255)
PERSON_BGR = (60, 220, 60)
JPEG_QUALITY = 75

Polygon = Sequence[tuple[float, float]]


def pixelate_boxes(image: np.ndarray, boxes: Sequence[Sequence[float]], pad: float = BOX_PAD) -> np.ndarray:
    """A copy of ``image`` with each box (x1, y1, x2, y2 in its pixels, padded) pixelated and smoothed."""
    import cv2

    out = image.copy()
    h, w = out.shape[:2]
    for x1, y1, x2, y2 in boxes:
        bw, bh = x2 - x1, y2 - y1
        if bw <= 0 or bh <= 0:
            continue
        ax1, ay1 = max(0, int(x1 - pad * bw)), max(0, int(y1 - pad * bh))
        ax2, ay2 = min(w, int(np.ceil(x2 + pad * bw))), min(h, int(np.ceil(y2 + pad * bh)))
        if ax2 <= ax1 or ay2 <= ay1:
            continue
        roi = out[ay1:ay2, ax1:ax2]
        cols = max(1, min(PERSON_BLOCKS, roi.shape[1]))
        rows = max(1, min(2 * PERSON_BLOCKS, roi.shape[0]))
        small = cv2.resize(roi, (cols, rows), interpolation=cv2.INTER_AREA)
        big = cv2.resize(small, (roi.shape[1], roi.shape[0]), interpolation=cv2.INTER_NEAREST)
        k = max(3, (min(roi.shape[:2]) // PERSON_BLOCKS) | 1)
        out[ay1:ay2, ax1:ax2] = cv2.GaussianBlur(big, (k, k), 0)
    return out


def reduce_detail(image: np.ndarray, detail_width: int = DETAIL_WIDTH, max_width: int = MAX_WIDTH) -> np.ndarray:
    """The whole frame at ``detail_width`` pixels across, enlarged to ``min(width, max_width)``."""
    import cv2

    h, w = image.shape[:2]
    out_w = min(w, max_width)
    out_h = max(1, round(h * out_w / w))
    dw = min(w, detail_width)
    small = cv2.resize(image, (dw, max(1, round(h * dw / w))), interpolation=cv2.INTER_AREA)
    return cv2.resize(small, (out_w, out_h), interpolation=cv2.INTER_LINEAR)


def draw_zones(image: np.ndarray, zones: Sequence[tuple[str, Polygon]], scale: float) -> np.ndarray:
    """Zone outlines and names over ``image``; polygons in frame pixels, multiplied by ``scale``."""
    import cv2

    for name, poly in zones:
        pts = np.array([[round(x * scale), round(y * scale)] for x, y in poly], np.int32)
        if len(pts) < 2:
            continue
        cv2.polylines(image, [pts], True, ZONE_BGR, 2, cv2.LINE_AA)
        top = pts[np.argmin(pts[:, 1])]
        org = (int(min(max(top[0], 2), image.shape[1] - 40)), int(max(12, top[1] - 4)))
        cv2.putText(image, name[:24], org, cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 3, cv2.LINE_AA)
        cv2.putText(image, name[:24], org, cv2.FONT_HERSHEY_SIMPLEX, 0.45, ZONE_BGR, 1, cv2.LINE_AA)
    return image


def render(image: np.ndarray, color: str, zones: Sequence[tuple[str, Polygon]], boxes: Sequence[Sequence[float]],
           *, detail_width: int = DETAIL_WIDTH, max_width: int = MAX_WIDTH) -> np.ndarray:
    """The served picture (BGR): person boxes pixelated, detail reduced, zones and box outlines drawn.

    ``image`` is the frame (``color`` "bgr" or "rgb"); ``zones`` and ``boxes`` are in its pixels.
    """
    import cv2

    bgr = image if color == "bgr" else image[:, :, ::-1]
    out = np.ascontiguousarray(reduce_detail(pixelate_boxes(bgr, boxes), detail_width, max_width))
    scale = out.shape[1] / image.shape[1]
    for x1, y1, x2, y2 in boxes:
        cv2.rectangle(out, (round(x1 * scale), round(y1 * scale)), (round(x2 * scale), round(y2 * scale)), PERSON_BGR, 1)
    return draw_zones(out, zones, scale)


def encode_jpeg(image: np.ndarray, quality: int = JPEG_QUALITY) -> bytes:
    """JPEG bytes of a BGR image. Raises ValueError if OpenCV cannot encode it."""
    import cv2

    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise ValueError(f"cannot encode a {image.shape} image as JPEG")
    return buf.tobytes()

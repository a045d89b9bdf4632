"""Composite store clips with exact ground truth, for vision tests, benchmarks and ``endcap run`` (dev tool).

Real people (cut out of ``vtest.avi`` by ``footage.sprites``) are composited over a drawn store scene
(back wall with three shelf units, tiled floor) following a script: each person walks between keyframes
``(t, x, y)`` — ``x, y`` is the foot point on the floor — and stands still where two keyframes share a
position. Size follows the floor's perspective; nearer people are drawn over farther ones. Because we
place every pixel, the truth is exact: per frame each person's box, and how much of them is visible
(occlusion by nearer people and the frame edge); per person and zone the visits and dwell seconds
(foot point inside the zone polygon, the definition the vision service uses).

``build(spec)`` renders the clip (MJPG AVI, as many IP cameras send) and its ``truth.json`` once into
``<cache>/clips/<name>-<content hash>/``; the hash covers the script, this module's version, the sprite
library's version and OpenCV's version, so a change rebuilds and an unchanged spec is reused.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from . import footage

CLIP_VERSION = 1
Key = tuple[float, float, float]  # t, x, y


@dataclass(frozen=True)
class Person:
    id: str
    sprite: int
    path: tuple[Key, ...]


@dataclass(frozen=True)
class ZoneSpec:
    id: str
    polygon: tuple[tuple[float, float], ...]
    facing: str = "up"


@dataclass(frozen=True)
class ClipSpec:
    name: str
    people: tuple[Person, ...]
    zones: tuple[ZoneSpec, ...]
    width: int = 640
    height: int = 360
    fps: float = 10.0
    duration_s: float = 30.0
    seed: int = 7
    horizon_y: float = 20.0  # where a person's height would shrink to zero
    height_per_px: float = 0.72  # person height (px) per pixel of foot y below the horizon
    visit_gap_s: float = 1.5  # in-zone runs closer than this are one visit (the service's exit grace)


ZONES = (
    ZoneSpec("A", ((20, 165), (205, 165), (200, 250), (10, 250))),
    ZoneSpec("B", ((225, 165), (415, 165), (420, 250), (220, 250))),
    ZoneSpec("C", ((435, 165), (620, 165), (630, 250), (440, 250))),
)

# Two shoppers dwell in A and B while a passer-by walks in front of both; a third dwells in C while another
# passer crosses in front; one person walks straight through all zones; a last one dwells in B at the end.
AISLE = ClipSpec("aisle", zones=ZONES, people=(
    Person("p1", 0, ((1.0, -40, 285), (3.5, 320, 285), (4.5, 320, 215), (14.0, 320, 215), (15.0, 320, 285), (18.0, 700, 285))),
    Person("p2", 2, ((4.0, -40, 290), (6.0, 110, 290), (7.0, 110, 210), (15.0, 110, 210), (16.0, 110, 290), (18.0, -40, 290))),
    Person("p3", 5, ((7.5, -60, 330), (13.0, 700, 330))),
    Person("p4", 3, ((11.0, 700, 280), (13.0, 530, 280), (14.0, 530, 205), (22.0, 530, 205), (23.0, 530, 280), (25.0, 700, 280))),
    Person("p5", 6, ((17.0, 700, 315), (22.0, -60, 315))),
    Person("p6", 4, ((21.0, -40, 230), (27.0, 700, 230))),
    Person("p7", 7, ((20.0, 700, 300), (23.0, 360, 300), (24.0, 360, 220), (30.0, 360, 220))),
))


@dataclass(frozen=True)
class Clip:
    video: Path
    truth_path: Path
    spec: ClipSpec

    def truth(self) -> dict:
        return json.loads(self.truth_path.read_text())

    def vision_zones_toml(self, camera: str = "cam1") -> str:
        """The ``[[vision.cameras.zones]]`` tables of this clip's zones (for configs in tests and ``endcap run``)."""
        out = []
        for z in self.spec.zones:
            pts = ", ".join(f"[{x:g}, {y:g}]" for x, y in z.polygon)
            out.append(f'[[vision.cameras.zones]]\nid = "{z.id}"\npolygon = [{pts}]\nfacing = "{z.facing}"\n')
        return "".join(out)


# --- script geometry -------------------------------------------------------------------------------

def position(path: tuple[Key, ...], t: float) -> tuple[float, float, float] | None:
    """``(x, y, vx)`` of a person at ``t`` (None before the first / after the last keyframe)."""
    if t < path[0][0] or t > path[-1][0]:
        return None
    for (t0, x0, y0), (t1, x1, y1) in zip(path, path[1:]):
        if t0 <= t <= t1:
            a = 0.0 if t1 == t0 else (t - t0) / (t1 - t0)
            return x0 + a * (x1 - x0), y0 + a * (y1 - y0), (x1 - x0) / max(t1 - t0, 1e-9)
    t0, x0, y0 = path[-1]
    return x0, y0, 0.0


def point_in_polygon(p, poly) -> bool:
    from endcap.vision.zones import point_in_polygon as pip

    return pip(p, poly)


# --- rendering -------------------------------------------------------------------------------------

def draw_store(spec: ClipSpec) -> np.ndarray:
    """A store aisle seen from a ceiling camera: back wall with shelves (top), tiled floor (bottom)."""
    import cv2

    rng = np.random.default_rng(spec.seed)
    w, h = spec.width, spec.height
    img = np.zeros((h, w, 3), np.uint8)
    wall_bottom = 150
    img[:wall_bottom] = (200, 208, 214)
    floor = np.linspace(170, 135, h - wall_bottom).astype(np.uint8)
    img[wall_bottom:] = np.stack([floor, floor + 8, floor + 14], axis=1)[:, None, :]
    for x in range(-400, w + 400, 60):  # floor tiles converging toward the horizon
        cv2.line(img, (w // 2 + (x - w // 2) // 3, wall_bottom), (x, h), (120, 126, 132), 1, cv2.LINE_AA)
    for y in (170, 195, 228, 270, 322):
        cv2.line(img, (0, y), (w, y), (122, 128, 134), 1, cv2.LINE_AA)
    for x0 in (15, 225, 435):  # three shelf units, four boards, products of random colours and sizes
        cv2.rectangle(img, (x0, 8), (x0 + 190, wall_bottom), (70, 78, 88), -1)
        for board in range(4):
            y_top = 14 + board * 34
            cv2.rectangle(img, (x0 + 4, y_top + 28), (x0 + 186, y_top + 32), (150, 155, 160), -1)
            x = x0 + 6
            while x < x0 + 180:
                pw, ph = int(rng.integers(8, 22)), int(rng.integers(12, 27))
                color = tuple(int(c) for c in rng.integers(40, 240, 3))
                cv2.rectangle(img, (x, y_top + 28 - ph), (min(x + pw, x0 + 184), y_top + 27), color, -1)
                x += pw + int(rng.integers(1, 4))
    return img


def _scaled(sprite: footage.Sprite, height: float, flip: bool):
    import cv2

    ys, xs = np.nonzero(sprite.mask > 0.5)
    img = sprite.image[ys.min():ys.max() + 1, xs.min():xs.max() + 1]
    mask = sprite.mask[ys.min():ys.max() + 1, xs.min():xs.max() + 1]
    s = height / img.shape[0]
    size = (max(2, round(img.shape[1] * s)), max(2, round(height)))
    img = cv2.resize(img, size, interpolation=cv2.INTER_LINEAR)
    mask = cv2.GaussianBlur(cv2.resize(mask, size, interpolation=cv2.INTER_LINEAR), (3, 3), 0)
    if flip:
        img, mask = img[:, ::-1], mask[:, ::-1]
    return img.astype(np.float32), np.clip(mask, 0, 1)


def render(spec: ClipSpec, tracklets: list[footage.Tracklet], out_video: Path) -> dict:
    """Write the clip to ``out_video`` and return its truth (see the module docstring)."""
    import cv2

    background = draw_store(spec).astype(np.float32)
    writer = cv2.VideoWriter(str(out_video), cv2.VideoWriter_fourcc(*"MJPG"), spec.fps, (spec.width, spec.height))
    if not writer.isOpened():
        raise footage.FootageError(f"{out_video}: OpenCV cannot write MJPG video")
    n_frames = int(round(spec.duration_s * spec.fps))
    state = {p.id: {"frame": 0, "flip": False} for p in spec.people}
    frames = []
    try:
        for i in range(n_frames):
            t = i / spec.fps
            layers = []
            for p in spec.people:
                pos = position(p.path, t)
                if pos is None:
                    continue
                x, y, vx = pos
                tr = tracklets[p.sprite % len(tracklets)]
                st = state[p.id]
                nxt = position(p.path, t + 1 / spec.fps)
                if nxt is not None and (abs(nxt[0] - x) > 1e-6 or abs(nxt[1] - y) > 1e-6):
                    st["frame"] += 1  # walking: next pose; standing: hold the pose
                    if abs(vx) > 1e-6:
                        st["flip"] = (vx > 0) != (tr.dx > 0)
                n = len(tr.frames)
                k = st["frame"] % (2 * n - 2) if n > 1 else 0
                sprite = tr.frames[k if k < n else 2 * n - 2 - k]  # ping-pong through the walk cycle
                img, alpha = _scaled(sprite, spec.height_per_px * (y - spec.horizon_y), st["flip"])
                x1, y1 = round(x - img.shape[1] / 2), round(y - img.shape[0])
                layers.append((y, p.id, img, alpha, x1, y1))
            layers.sort(key=lambda L: L[0])  # far (small foot y) first
            canvas = background.copy()
            occ = np.zeros((spec.height, spec.width), np.float32)
            people = {}
            for _, pid, img, alpha, x1, y1 in reversed(layers):  # near to far: visibility after nearer people
                fx1, fy1 = max(0, x1), max(0, y1)
                fx2, fy2 = min(spec.width, x1 + img.shape[1]), min(spec.height, y1 + img.shape[0])
                total = float(alpha.sum())
                vis = 0.0
                if fx2 > fx1 and fy2 > fy1:
                    a = alpha[fy1 - y1:fy2 - y1, fx1 - x1:fx2 - x1]
                    vis = float((a * (1 - occ[fy1:fy2, fx1:fx2])).sum()) / total
                    occ[fy1:fy2, fx1:fx2] += a * (1 - occ[fy1:fy2, fx1:fx2])
                ys, xs = np.nonzero(alpha > 0.5)
                full = [x1 + int(xs.min()), y1 + int(ys.min()), x1 + int(xs.max()) + 1, y1 + int(ys.max()) + 1]
                box = [min(max(full[0], 0), spec.width), min(max(full[1], 0), spec.height),
                       min(max(full[2], 0), spec.width), min(max(full[3], 0), spec.height)]
                people[pid] = {"id": pid, "box": box, "full_box": full, "visibility": round(vis, 4)}
            for _, pid, img, alpha, x1, y1 in layers:  # paint far to near
                fx1, fy1 = max(0, x1), max(0, y1)
                fx2, fy2 = min(spec.width, x1 + img.shape[1]), min(spec.height, y1 + img.shape[0])
                if fx2 <= fx1 or fy2 <= fy1:
                    continue
                a = alpha[fy1 - y1:fy2 - y1, fx1 - x1:fx2 - x1, None]
                canvas[fy1:fy2, fx1:fx2] = a * img[fy1 - y1:fy2 - y1, fx1 - x1:fx2 - x1] + (1 - a) * canvas[fy1:fy2, fx1:fx2]
            noise = np.random.default_rng(spec.seed * 100_003 + i).normal(0, 2.0, canvas.shape).astype(np.float32)
            writer.write(np.clip(canvas + noise, 0, 255).astype(np.uint8))
            frames.append({"t": round(t, 4), "people": [people[k] for k in sorted(people)]})
    finally:
        writer.release()
    return {"spec": asdict(spec), "fps": spec.fps, "frames": frames, "visits": visits(spec, frames)}


def visits(spec: ClipSpec, frames: list[dict]) -> list[dict]:
    """Per person and zone: runs of frames with the foot point in the zone, merged across short gaps."""
    out = []
    for z in spec.zones:
        runs: dict[str, list[list[float]]] = {}
        for f in frames:
            for p in f["people"]:
                x1, _, x2, y2 = p["full_box"]
                if point_in_polygon(((x1 + x2) / 2, y2), z.polygon):
                    r = runs.setdefault(p["id"], [])
                    if r and f["t"] - r[-1][1] <= spec.visit_gap_s:
                        r[-1][1] = f["t"]
                    else:
                        r.append([f["t"], f["t"]])
        for pid in sorted(runs):
            for first, last in runs[pid]:
                out.append({"person": pid, "zone": z.id, "first_t": first, "last_t": last, "dwell_s": round(last - first, 4)})
    return out


def content_hash(spec: ClipSpec) -> str:
    import cv2

    text = json.dumps({"spec": asdict(spec), "clip": CLIP_VERSION, "sprites": footage.SPRITES_VERSION, "cv2": cv2.__version__},
                      sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def build(spec: ClipSpec = AISLE, cache: Path | None = None) -> Clip:
    """The rendered clip for ``spec``, from the cache or rendered now (a few seconds)."""
    cache = cache or footage.cache_root()
    d = cache / "clips" / f"{spec.name}-{content_hash(spec)}"
    clip = Clip(d / "clip.avi", d / "truth.json", spec)
    if clip.truth_path.is_file() and clip.video.is_file():
        return clip
    tracklets = footage.sprites(cache)
    with footage.cache_lock(cache):
        if clip.truth_path.is_file() and clip.video.is_file():
            return clip
        d.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{spec.name}-", dir=d.parent))
        try:
            truth = render(spec, tracklets, tmp / "clip.avi")
            (tmp / "truth.json").write_text(json.dumps(truth, separators=(",", ":")))
            shutil.rmtree(d, ignore_errors=True)
            os.replace(tmp, d)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return clip


if __name__ == "__main__":
    c = build()
    print(c.video)
    for v in c.truth()["visits"]:
        print(v)

"""Real footage for vision tests (dev tool): OpenCV's sample data from Debian's ``opencv-doc`` package, and
walking people cut out of its ``vtest.avi`` by background subtraction (no detector involved).

``opencv_doc_file(name)`` finds a sample file: the installed package's
``/usr/share/doc/opencv-doc/examples/data`` if present (Debian images often exclude /usr/share/doc), else
our cache, else it fetches the package into the cache: ``apt-get download opencv-doc`` and
``dpkg-deb --fsys-tarfile`` (only the few files we use are kept).

``sprites()`` returns people from ``vtest.avi``: MOG2 background subtraction (shadows excluded) learns the
empty scene over the whole clip, then each frame's foreground is split into connected blobs; person-shaped
blobs with nothing else around them are chained frame to frame into *tracklets* (one real person walking),
each frame an image crop plus its mask. Built once, cached as PNGs (BGRA) under
``<cache>/sprites-<version>/``.

CLI (bootstrap / by hand): ``python -m endcap.sim.footage fetch|sprites``.
"""
from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..core.atomic import atomic_write
from .errors import SimError

DOC_DATA = "usr/share/doc/opencv-doc/examples/data"
FILES = ("vtest.avi", "messi5.jpg", "basketball1.png", "basketball2.png", "building.jpg")
SPRITES_VERSION = 1


class FootageError(SimError):
    """Sample footage is not available and could not be fetched."""


def cache_root() -> Path:
    """``$ENDCAP_CACHE_DIR``, else ``.cache/endcap`` of the source checkout, else ``~/.cache/endcap``."""
    env = os.environ.get("ENDCAP_CACHE_DIR")
    if env:
        return Path(env)
    checkout = Path(__file__).resolve().parents[3]
    if (checkout / "pyproject.toml").is_file() and os.access(checkout, os.W_OK):
        return checkout / ".cache" / "endcap"
    return Path.home() / ".cache" / "endcap"


@contextlib.contextmanager
def cache_lock(cache: Path):
    """Serialise builders of the same cache across processes (pytest-xdist workers, bootstrap)."""
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / ".lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def opencv_doc_file(name: str, cache: Path | None = None, fetch: bool = True) -> Path:
    """Path of one of ``FILES``.

    Raises:
        FootageError: not installed, not cached, and (``fetch``) the package could not be fetched.
    """
    if name not in FILES:
        raise ValueError(f"{name} is not one of the sample files we extract: {FILES}")
    system = Path("/") / DOC_DATA / name
    if system.is_file():
        return system
    cache = cache or cache_root()
    cached = cache / "opencv-doc" / name
    if cached.is_file():
        return cached
    if not fetch:
        raise FootageError(f"{name}: opencv-doc sample data not found in /{DOC_DATA} or {cached.parent}")
    with cache_lock(cache):
        if not cached.is_file():
            fetch_opencv_doc(cache / "opencv-doc")
    return cached


def _apt_download(workdir: Path) -> Path:
    def attempt() -> subprocess.CompletedProcess:
        return subprocess.run(["apt-get", "download", "opencv-doc"], cwd=workdir, capture_output=True, text=True, timeout=600)

    try:
        done = attempt()
        if done.returncode != 0 and os.geteuid() == 0:  # package lists never fetched on this host yet
            subprocess.run(["apt-get", "update", "-q"], capture_output=True, text=True, timeout=600)
            done = attempt()
    except (OSError, subprocess.TimeoutExpired) as e:
        raise FootageError(f"apt-get download opencv-doc failed: {e}") from e
    debs = sorted(workdir.glob("opencv-doc_*.deb"))
    if done.returncode != 0 or not debs:
        raise FootageError(f"apt-get download opencv-doc failed ({done.returncode}): {done.stderr.strip()[-400:]}")
    return debs[-1]


def fetch_opencv_doc(dest: Path) -> None:
    """Download Debian's ``opencv-doc`` and keep ``FILES`` from its sample data in ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="opencv-doc-") as tmp:
        deb = _apt_download(Path(tmp))
        proc = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(deb)], stdout=subprocess.PIPE)
        wanted = {f"./{DOC_DATA}/{n}": n for n in FILES}
        found = set()
        try:
            with tarfile.open(fileobj=proc.stdout, mode="r|") as tar:
                for member in tar:
                    name = wanted.get(member.name)
                    if name and member.isfile():
                        atomic_write(dest / name, tar.extractfile(member).read())
                        found.add(name)
        finally:
            proc.stdout.close()
            proc.wait()
    missing = set(FILES) - found
    if missing:
        raise FootageError(f"opencv-doc package lacks {sorted(missing)}")


# --- people cut out of vtest.avi -------------------------------------------------------------------

@dataclass
class Sprite:
    image: np.ndarray  # h×w×3 BGR
    mask: np.ndarray  # h×w float32 alpha in [0, 1]


@dataclass
class Tracklet:
    frames: list[Sprite]
    dx: float  # mean horizontal motion per frame in the source (sign: walking direction)


def _blobs(fg: np.ndarray):
    import cv2

    mask = (fg == 255).astype(np.uint8)
    mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, np.ones((9, 5), np.uint8))
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    return mask, labels, stats[1:], n - 1


def _person_like(x: int, y: int, w: int, h: int, area: int, shape: tuple[int, int]) -> bool:
    H, W = shape
    return (55 <= h <= 200 and 18 <= w <= 90 and 1.8 <= h / w <= 4.5 and area >= 0.35 * w * h
            and x > 3 and y > 3 and x + w < W - 3 and y + h < H - 3)


def _isolated(i: int, stats: np.ndarray, margin: int = 12) -> bool:
    x, y, w, h, _ = stats[i]
    for j, (x2, y2, w2, h2, a2) in enumerate(stats):
        if j == i or a2 < 40:
            continue
        if x2 < x + w + margin and x2 + w2 > x - margin and y2 < y + h + margin and y2 + h2 > y - margin:
            return False
    return True


def _iou(a, b) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    iw = max(0, min(ax + aw, bx + bw) - max(ax, bx))
    ih = max(0, min(ay + ah, by + bh) - max(ay, by))
    inter = iw * ih
    return inter / float(aw * ah + bw * bh - inter) if inter else 0.0


def cut_people(video: Path, min_len: int = 15) -> list[Tracklet]:
    """Tracklets of isolated walking people in ``video`` (see the module docstring)."""
    import cv2

    sub = cv2.createBackgroundSubtractorMOG2(history=500, varThreshold=25, detectShadows=True)
    cap = cv2.VideoCapture(str(video))
    if not cap.isOpened():
        raise FootageError(f"{video}: cannot open")
    while True:  # pass 1: learn the empty scene from the whole clip
        ok, frame = cap.read()
        if not ok:
            break
        sub.apply(frame)
    cap.release()
    cap = cv2.VideoCapture(str(video))
    open_chains: list[tuple[tuple, list[Sprite], list[float]]] = []
    done: list[Tracklet] = []
    while True:  # pass 2: foreground against the learnt background, no further learning
        ok, frame = cap.read()
        if not ok:
            break
        mask, labels, stats, n = _blobs(sub.apply(frame, learningRate=0))
        found = []
        for i in range(n):
            x, y, w, h, area = (int(v) for v in stats[i])
            if _person_like(x, y, w, h, area, mask.shape) and _isolated(i, stats):
                alpha = (labels[y:y + h, x:x + w] == i + 1).astype(np.float32)
                found.append(((x, y, w, h), Sprite(frame[y:y + h, x:x + w].copy(), alpha)))
        next_chains = []
        used = set()
        for box, sprites, xs in open_chains:
            best = max(range(len(found)), key=lambda k: _iou(box, found[k][0]), default=None)
            if best is not None and best not in used and _iou(box, found[best][0]) > 0.3:
                used.add(best)
                b, s = found[best]
                next_chains.append((b, sprites + [s], xs + [b[0] + b[2] / 2]))
            elif len(sprites) >= min_len:
                done.append(Tracklet(sprites, (xs[-1] - xs[0]) / (len(xs) - 1)))
        for k, (b, s) in enumerate(found):
            if k not in used:
                next_chains.append((b, [s], [b[0] + b[2] / 2]))
        open_chains = next_chains
    cap.release()
    done += [Tracklet(s, (xs[-1] - xs[0]) / (len(xs) - 1)) for _, s, xs in open_chains if len(s) >= min_len]
    return done


def sprites(cache: Path | None = None, max_tracklets: int = 8) -> list[Tracklet]:
    """The cached people library (built from ``vtest.avi`` on first use)."""
    import cv2

    cache = cache or cache_root()
    root = cache / f"sprites-v{SPRITES_VERSION}"
    if not (root / "done").is_file():
        video = opencv_doc_file("vtest.avi", cache)
        with cache_lock(cache):
            if not (root / "done").is_file():
                _build_sprites(video, root, cache, max_tracklets)
    out = []
    for d in sorted(p for p in root.iterdir() if p.is_dir()):
        frames = []
        for f in sorted(d.glob("*.png")):
            bgra = cv2.imread(str(f), cv2.IMREAD_UNCHANGED)
            frames.append(Sprite(bgra[:, :, :3].copy(), bgra[:, :, 3].astype(np.float32) / 255.0))
        out.append(Tracklet(frames, float((d / "dx").read_text())))
    return out


def _build_sprites(video: Path, root: Path, cache: Path, max_tracklets: int) -> None:
    import cv2

    tracklets = cut_people(video)
    tracklets.sort(key=lambda t: -len(t.frames))
    tracklets = [t for t in tracklets if abs(t.dx) > 0.3][:max_tracklets]
    if not tracklets:
        raise FootageError("no isolated walking people found in vtest.avi")
    tmp = Path(tempfile.mkdtemp(prefix=".sprites-", dir=cache))
    for i, t in enumerate(tracklets):
        d = tmp / f"{i:02d}"
        d.mkdir()
        (d / "dx").write_text(f"{t.dx:.4f}\n")
        for j, s in enumerate(t.frames):
            bgra = np.dstack([s.image, (s.mask * 255).astype(np.uint8)])
            cv2.imwrite(str(d / f"{j:03d}.png"), bgra)
    (tmp / "done").write_text("ok\n")
    shutil.rmtree(root, ignore_errors=True)
    os.replace(tmp, root)


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    what = args[0] if args else "fetch"
    try:
        if what == "fetch":
            for n in FILES:
                print(opencv_doc_file(n))
        elif what == "sprites":
            t = sprites()
            print(f"{len(t)} tracklets, {sum(len(x.frames) for x in t)} frames in {cache_root()}")
        else:
            print("usage: python -m endcap.sim.footage fetch|sprites", file=sys.stderr)
            return 2
    except FootageError as e:
        print(f"footage: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The detectors on real photographs that packages ship (OpenCV's samples from Debian's opencv-doc,
scikit-image's astronaut), the committed text graph against a fresh generation from the PyPI model,
and HOG (the benchmarks' anchor) on the same photos."""
from __future__ import annotations

import msgspec
import pytest

from endcap.sim.footage import opencv_doc_file
from endcap.sim.vision_eval import iou
from endcap.vision.config import DetectorConfig
from endcap.vision.detectors import api, ssd_graph
from endcap.vision.sources import Frame

# Hand-drawn boxes around every person in each photo (x1, y1, x2, y2).
PHOTOS = {
    "messi5.jpg": [(68, 58, 458, 336)],
    "basketball1.png": [(30, 80, 160, 480), (432, 20, 640, 480)],
    "basketball2.png": [(30, 76, 178, 480), (430, 22, 640, 470)],
}


def detector(kind: str, **kw):
    return api.create(msgspec.convert({"type": kind, **kw}, DetectorConfig))


@pytest.fixture(scope="module", params=["pad", "tiles"])
def ssd(request):
    return detector("ssd_cpu", ssd_cpu={"layout": request.param})


def _matches(dets, truth) -> int:
    return sum(1 for t in truth if any(iou(b, t) >= 0.5 for b in dets.boxes))


@pytest.mark.parametrize("name", sorted(PHOTOS))
def test_people_in_opencv_sample_photos_are_found(ssd, name):
    import cv2

    image = cv2.imread(str(opencv_doc_file(name)))
    dets = ssd.detect(Frame(image, "bgr", 0.0, 0.0, 0))
    assert _matches(dets, PHOTOS[name]) == len(PHOTOS[name]), dets
    assert len(dets) == len(PHOTOS[name])  # and nothing else


def test_the_astronaut_is_found_in_rgb_as_in_bgr(ssd):
    import skimage.data

    rgb = skimage.data.astronaut()
    for frame in (Frame(rgb, "rgb", 0, 0, 0), Frame(rgb[:, :, ::-1].copy(), "bgr", 0, 0, 0)):
        dets = ssd.detect(frame)
        assert len(dets) == 1 and iou(dets.boxes[0], (20, 14, 372, 512)) >= 0.5 and dets.scores[0] > 0.8


def test_a_photo_without_people_gives_no_detection(ssd):
    import cv2

    image = cv2.imread(str(opencv_doc_file("building.jpg")))
    assert len(ssd.detect(Frame(image, "bgr", 0, 0, 0))) == 0


def test_hog_anchor_finds_the_basketball_players():
    import cv2

    image = cv2.imread(str(opencv_doc_file("basketball1.png")))
    dets = detector("hog").detect(Frame(image, "bgr", 0, 0, 0))
    assert _matches(dets, PHOTOS["basketball1.png"]) >= 1


def test_the_committed_graph_is_what_the_generator_makes_from_the_shipped_model():
    assert ssd_graph.GENERATED.read_text(encoding="utf-8") == ssd_graph.generate(ssd_graph.default_model())
    assert ssd_graph.main(["--check"]) == 0

"""vision/snapshot.py on a real frame of the composite clip (real people from vtest.avi): person boxes are
destroyed, the whole frame loses fine detail, zones are drawn, and the camera's frame is left untouched."""
from __future__ import annotations

import numpy as np
import pytest

from endcap.vision import snapshot
from tests.fixtures.vision import aisle_clip  # noqa: F401 - fixture


@pytest.fixture(scope="module")
def frame_and_box(aisle_clip):  # noqa: F811
    import cv2

    truth = aisle_clip.truth()
    index, box = next((i, p["box"]) for i, f in enumerate(truth["frames"]) for p in f["people"]
                      if p["visibility"] > 0.98 and p["box"][0] > 20 and p["box"][3] - p["box"][1] > 100)
    cap = cv2.VideoCapture(str(aisle_clip.video))
    try:
        cap.set(cv2.CAP_PROP_POS_FRAMES, index)
        ok, image = cap.read()
    finally:
        cap.release()
    assert ok and image.shape[:2] == (aisle_clip.spec.height, aisle_clip.spec.width)
    zones = [(z.id, [tuple(p) for p in z.polygon]) for z in aisle_clip.spec.zones]
    return image, box, zones


def _decode(jpeg: bytes, size: tuple[int, int]) -> np.ndarray:
    import cv2

    img = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert img is not None
    return cv2.resize(img, size, interpolation=cv2.INTER_LINEAR)


def _detail(img: np.ndarray) -> float:
    import cv2

    return float(cv2.Laplacian(cv2.cvtColor(img, cv2.COLOR_BGR2GRAY), cv2.CV_64F).var())


def test_person_box_pixels_are_destroyed_and_the_frame_is_untouched(frame_and_box):
    image, box, zones = frame_and_box
    before = image.copy()
    h, w = image.shape[:2]
    assert snapshot.encode_jpeg(snapshot.render(image, "bgr", zones, [box]))[:2] == b"\xff\xd8"
    assert np.array_equal(image, before)
    jpeg = snapshot.encode_jpeg(snapshot.render(image, "bgr", [], [box]))  # no zone lines across the person
    x1, y1, x2, y2 = box
    inner = (slice(y1 + 6, y2 - 6), slice(x1 + 6, x2 - 6))  # inside the box, clear of its outline
    shown = _decode(jpeg, (w, h))[inner].astype(np.float32)
    orig = image[inner].astype(np.float32)
    assert float(np.abs(shown - orig).mean()) > 12.0  # strongly different from the person as filmed
    assert _detail(shown.astype(np.uint8)) < 0.05 * _detail(orig.astype(np.uint8))
    # and much flatter than the same region with the global reduction alone (the box blur does real work)
    only_global = _decode(snapshot.encode_jpeg(snapshot.render(image, "bgr", [], [])), (w, h))[inner]
    assert np.abs(shown - only_global.astype(np.float32)).mean() > 5.0
    assert float(shown.std(axis=(0, 1)).mean()) < float(only_global.astype(np.float32).std(axis=(0, 1)).mean())


def test_zone_outlines_are_drawn_where_the_zones_are(frame_and_box):
    image, _box, zones = frame_and_box
    with_zones = snapshot.render(image, "bgr", zones, [])
    without = snapshot.render(image, "bgr", [], [])
    assert with_zones.shape[1] == snapshot.MAX_WIDTH
    scale = with_zones.shape[1] / image.shape[1]
    target = np.array(snapshot.ZONE_BGR, np.float32)
    for name, poly in zones:
        for (ax, ay), (bx, by) in zip(poly, poly[1:] + poly[:1]):
            mx, my = round((ax + bx) / 2 * scale), round((ay + by) / 2 * scale)
            near = lambda img: np.linalg.norm(img[my - 2:my + 3, mx - 2:mx + 3].astype(np.float32) - target, axis=2).min()  # noqa: E731
            assert near(with_zones) < 40, f"zone {name}: no outline at ({mx}, {my})"
            assert near(without) > 80, f"zone {name}: the scene itself has the outline colour at ({mx}, {my})"
    decoded = _decode(snapshot.encode_jpeg(with_zones), (with_zones.shape[1], with_zones.shape[0]))
    assert np.abs(decoded.astype(np.float32) - with_zones.astype(np.float32)).mean() < 6  # the JPEG is that picture


def test_fine_detail_is_gone_everywhere_even_without_a_detection():
    yy, xx = np.mgrid[0:720, 0:1280]
    checker = (((yy // 3 + xx // 3) % 2) * 255).astype(np.uint8)  # 3-pixel features, like eyes at a distance
    image = np.dstack([checker] * 3)
    out = snapshot.render(image, "rgb", [], [])
    assert out.shape == (180, 320, 3)
    assert float(out.astype(np.float32).std()) < 3.0  # averaged to flat grey: nothing of the pattern survives


def test_a_greyscale_frame_is_an_error_reply_and_the_rpc_thread_keeps_answering():
    """A frame layout the renderer does not expect (greyscale from an "rgb" source) must not kill vision's
    maintenance RPC thread (and with it the service): it is an error reply naming the camera and the frame."""
    import threading
    import time

    from endcap.core import messages as m
    from endcap.core.bus import RpcClient, RpcThread
    from endcap.core.errors import EndcapError, RemoteError
    from endcap.vision import maint
    from endcap.vision.config import CameraConfig, VisionConfig, ZoneConfig
    from endcap.vision.service import CameraWorker, Latest

    cam = CameraConfig(id="cam1", source="/nonexistent.avi", width=320, height=180,
                       zones=[ZoneConfig(id="A", polygon=[[10, 10], [100, 10], [100, 100]])])
    stop = threading.Event()
    worker = CameraWorker(cam, VisionConfig(cameras=[cam]), emit=None, stop=stop)  # never started: no source
    grey = np.full((180, 320), 128, np.uint8)
    worker.latest = Latest(grey, "rgb", np.zeros((0, 4), np.float32), [], time.time())
    vm = maint.VisionMaint([worker])
    with pytest.raises(EndcapError) as e:
        vm.snapshot(m.SnapshotRequest("cam1"))
    assert e.value.code == "encode" and "camera cam1: cannot render its rgb frame of shape (180, 320)" in str(e.value)

    import shutil
    import tempfile

    sockdir = tempfile.mkdtemp(prefix="ecv-")  # short: unix socket paths are limited to 107 bytes
    addr = f"ipc://{sockdir}/v.rpc"
    rpc = RpcThread("vision-rpc", maint.server(addr, vm), stop)
    try:
        with RpcClient(addr, "test", timeout_ms=3000) as cli:
            with pytest.raises(RemoteError) as e:
                cli.call("snapshot", m.SnapshotRequest("cam1"), m.Snapshot)
            assert e.value.code == "encode" and "shape (180, 320)" in str(e.value)
            assert [c.camera for c in cli.call("cameras", m.Empty(), m.CamerasReply).cameras] == ["cam1"]
        rpc.check()
        assert rpc.alive()
    finally:
        stop.set()
        rpc.close()
        shutil.rmtree(sockdir, ignore_errors=True)

"""The detectors' pure parts: SSD output decoding and tile merging, the jetson plugin's config -> detectNet
arguments and result conversion (from plain objects with detectNet's fields; the GPU path runs on Jetson
hardware only), the text-graph reader/writer, and the shared ``Detections`` arrays."""
from __future__ import annotations

from types import SimpleNamespace

import msgspec
import numpy as np
import pytest

from endcap.vision.config import DetectorConfig
from endcap.vision.detectors import jetson, ssd_cpu, ssd_graph
from endcap.vision.detectors.api import DetectorError, Detections
from endcap.vision.sources import JetsonSource, SourceError, parse_source


def cfg(**kw) -> DetectorConfig:
    return msgspec.convert(kw, DetectorConfig)


# --- Detections -----------------------------------------------------------------------------------

def test_detections_are_clipped_thresholded_and_scaled():
    d = Detections.of([[-5, 10, 50, 200], [10, 10, 20, 20], [30, 0, 90, 380]], [0.9, 0.9, 0.3])
    f = d.filtered(threshold=0.4, min_height=24, width=64, height=360)
    assert f.boxes.tolist() == [[0, 10, 50, 200]] and f.scores.dtype == np.float32
    assert f.scaled(2.0, 0.5).boxes.tolist() == [[0, 5, 100, 100]]
    assert len(Detections.empty()) == 0


# --- ssd_cpu --------------------------------------------------------------------------------------

def test_decode_keeps_people_and_converts_to_pixels():
    out = np.array([[0, 1, 0.9, 0.1, 0.2, 0.3, 0.8], [0, 2, 0.99, 0, 0, 1, 1], [0, 1, 0.2, 0, 0, 0.5, 0.5]], np.float32)
    d = ssd_cpu.decode(out.reshape(1, 1, 3, 7), 200, 100)
    assert np.allclose(d.boxes, [[20, 20, 60, 80], [0, 0, 100, 50]]) and np.allclose(d.scores, [0.9, 0.2])


@pytest.mark.parametrize("size, expect", [((640, 360), (400, [0, 240])), ((1280, 720), (800, [0, 480])),
                                          ((300, 300), (300, [0])), ((400, 480), (400, [0])),
                                          ((1920, 360), (400, [0, 217, 434, 651, 869, 1086, 1303, 1520]))])
def test_tiles_are_near_square_and_overlap(size, expect):
    tw, offs = ssd_cpu.tile_offsets(*size)
    assert (tw, offs) == expect
    if len(offs) > 1:
        assert min(b - a for a, b in zip(offs, offs[1:])) <= 0.6 * tw  # ≥ 40 % overlap
        assert offs[-1] + tw == size[0]


def test_pad_layout_adds_grey_rows_up_to_six_by_five():
    assert ssd_cpu.pad_rows(640, 360) == (86, 87)  # 640 / 1.2 = 533 rows
    assert ssd_cpu.pad_rows(512, 512) == (0, 0) and ssd_cpu.pad_rows(400, 480) == (0, 0)


def test_nms_keeps_the_best_of_overlapping_boxes():
    b = np.array([[0, 0, 10, 10], [1, 1, 10, 10], [20, 20, 30, 30]], np.float32)
    assert ssd_cpu.nms(b, np.array([0.5, 0.9, 0.4], np.float32)).tolist() == [1, 2]


def _row(tile: int, score: float, x1: float, y1: float, x2: float, y2: float, tw=400, h=360):
    return [tile, 1, score, x1 / tw, y1 / h, x2 / tw, y2 / h]


def test_merge_tiles_drops_cut_copies_and_joins_halves_of_wide_people():
    tw, offs = 400, [0, 240]
    rows = [
        _row(0, 0.9, 50, 100, 110, 300),  # whole, left tile only
        _row(0, 0.8, 350, 100, 400, 300),  # cut by tile 0's right edge ...
        _row(1, 0.85, 110, 100, 170, 300),  # ... and whole in tile 1 (frame x 350..410): keep this one
        _row(0, 0.7, 150, 40, 400, 350),  # a wide person: left half spans the overlap (frame 150..400)
        _row(1, 0.9, 0, 45, 260, 352),  # right half (frame 240..500)
    ]
    d = ssd_cpu.merge_tiles(np.array(rows, np.float32), 640, 360, tw, offs)
    got = sorted((round(float(b[0])), round(float(b[2])), round(float(s), 2)) for b, s in zip(d.boxes, d.scores))
    assert got == [(50, 110, 0.9), (150, 500, 0.7), (350, 410, 0.85)]


def test_the_model_must_match_its_graph(tmp_path):
    graph = tmp_path / "g.pbtxt"
    graph.write_text("# source-sha256: " + "0" * 64 + "\nnode {\n}\n")
    model = tmp_path / "m.pb"
    model.write_bytes(b"not the model")
    with pytest.raises(DetectorError, match="is not the model the graph"):
        ssd_cpu.resolve_model(SimpleNamespace(model=str(model), graph=str(graph)))
    with pytest.raises(DetectorError, match="no such file"):
        ssd_cpu.resolve_model(SimpleNamespace(model=str(tmp_path / "missing.pb"), graph=str(graph)))


# --- the text graph reader/writer -----------------------------------------------------------------

def test_text_format_round_trips():
    text = 'node {\n  name: "a/b"\n  op: "Conv2D"\n  input: "x"\n  attr {\n    key: "padding"\n    value {\n      s: "SAME"\n    }\n  }\n}\n'
    items = ssd_graph.parse_message("# comment\n" + text)
    assert ssd_graph.format_message(items) == text
    node = ssd_graph.Node.from_items(items[0][1])
    assert (node.name, node.op, node.inputs, list(node.attrs)) == ("a/b", "Conv2D", ["x"], ["padding"])
    node.set_attr("variance", [0.1, 0.2])
    assert "float_val: 0.1\n" in node.text() and "size: 2\n" in node.text()


def test_prior_boxes_follow_the_ssd_anchor_rules():
    p = ssd_graph.SsdParams()
    scales = [0.2 + 0.75 * i / 5 for i in range(6)] + [1.0]
    w0, h0 = ssd_graph._prior_sizes(p, 0, scales)
    assert w0[0] == pytest.approx(30.0) and len(w0) == 3  # reduced lowest layer: 0.1 and two of scale 0.2
    w1, h1 = ssd_graph._prior_sizes(p, 1, scales)
    assert len(w1) == 6 and w1[1] / h1[1] == pytest.approx(2.0) and w1[-1] == pytest.approx(h1[-1])


# --- jetson (pure parts) --------------------------------------------------------------------------

def test_detectnet_arguments_for_a_builtin_network_and_a_custom_model():
    assert jetson.detectnet_args(cfg(type="jetson", threshold=0.45)) == ((), {"network": "ssd-mobilenet-v2", "threshold": 0.45})
    args, kw = jetson.detectnet_args(cfg(type="jetson", jetson={"model": "/m/ssd.onnx", "labels": "/m/labels.txt"}))
    assert args == () and kw["threshold"] == 0.4
    assert kw["argv"] == ["endcap-vision", "--model=/m/ssd.onnx", "--labels=/m/labels.txt", "--input-blob=input_0",
                          "--output-cvg=scores", "--output-bbox=boxes", "--threshold=0.4"]


def test_person_classes_are_found_by_label():
    assert jetson.person_class_ids(["BACKGROUND", "Person", "bicycle", "pedestrian "], ["person", "pedestrian"]) == {1, 3}


def test_detectnet_results_become_person_detections():
    det = lambda cls, conf, l, t, r, b: SimpleNamespace(ClassID=cls, Confidence=conf, Left=l, Top=t, Right=r, Bottom=b)  # noqa: E731
    results = [det(1, 0.9, 10, 20, 60, 200), det(3, 0.99, 0, 0, 50, 50), det(1, 0.3, 0, 0, 40, 100),
               det(1, 0.8, 600, 10, 700, 300), det(1, 0.95, 5, 5, 15, 15)]
    d = jetson.to_detections(results, {1}, 640, 360, threshold=0.4, min_height=24)
    assert d.boxes.tolist() == [[10, 20, 60, 200], [600, 10, 640, 300]] and np.allclose(d.scores, [0.9, 0.8])
    assert len(jetson.to_detections([], {1}, 640, 360, 0.4, 24)) == 0


def test_without_jetpack_the_jetson_plugins_fail_clearly():
    with pytest.raises(DetectorError, match="jetson-inference"):
        jetson.JetsonDetector(cfg(type="jetson"))
    src = JetsonSource("cam1", "csi://0", width=1280, height=720)
    with pytest.raises(SourceError, match="camera cam1: backend 'jetson' needs jetson_utils"):
        src.open()


def test_jetson_source_options():
    assert JetsonSource("c", "csi://0", width=1280, height=720).argv() == ["--input-width=1280", "--input-height=720"]
    assert "--input-loop=-1" in JetsonSource("c", "file:///x.mp4", width=640, height=360, loop=True).argv()


@pytest.mark.parametrize("url, expect", [("/data/clip.avi", ("file", "/data/clip.avi")), ("file:///a/b.avi", ("file", "/a/b.avi")),
                                         ("/dev/video0", ("v4l2", "/dev/video0")), ("v4l2:///dev/video2", ("v4l2", "/dev/video2")),
                                         ("rtsp://h/s", ("rtsp", "rtsp://h/s"))])
def test_source_urls(url, expect):
    assert parse_source(url) == expect

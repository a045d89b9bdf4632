"""``[vision]`` config: strict keys, cameras and zones validated without I/O, every problem named."""
from __future__ import annotations

from typing import Optional

import msgspec
import pytest

from endcap.core.config import convert_sections, parse_toml
from endcap.core.errors import ConfigError
from endcap.vision import config as vc
from endcap.vision.detectors import api

# The gateway's schema shape: one optional section per service (gateway.config_schema does the same).
Schema = msgspec.defstruct("S", [("vision", Optional[vc.VisionConfig], None)], forbid_unknown_fields=True,
                           frozen=True, kw_only=True)

GOOD = """
[vision]
[[vision.cameras]]
id = "aisle-5"
source = "rtsp://10.0.0.21/stream1"
width = 640
height = 360
[[vision.cameras.zones]]
id = "B"
polygon = [[200, 250], [440, 250], [470, 340], [170, 340]]
"""


def load(text: str):
    return convert_sections(parse_toml(text, "t.toml"), Schema).vision


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as e:
        load(text)
    return e.value.problems


def test_a_minimal_camera_with_one_zone_gets_every_default():
    cfg = load(GOOD)
    cam = cfg.cameras[0]
    assert cam.backend == "opencv" and cam.fps == 10.0 and cam.zones[0].facing == "up"
    assert cfg.detector.type == "ssd_cpu" and cfg.gate == 0.85 and cfg.debug_view.enabled is False


def test_registry_and_config_agree_on_detector_types():
    assert set(api.REGISTRY) == set(vc.DETECTOR_TYPES)


@pytest.mark.parametrize("patch, needle", [
    (("[470, 340]", "[700, 340]"), "zone 'B' polygon point(s) 2 outside the 640x360 frame"),
    (("[[200, 250], [440, 250], [470, 340], [170, 340]]", "[[200, 250], [440, 340], [440, 250], [200, 340]]"),
     "self-intersecting"),
    (('source = "rtsp://10.0.0.21/stream1"', 'source = "ftp://cam/x"'), "source: unsupported"),
    (('source = "rtsp://10.0.0.21/stream1"', 'source = "csi://0"'), 'csi:// cameras need backend = "jetson"'),
    (('id = "aisle-5"', 'id = "aisle 5!"'), "is not 1-32 letters"),
    (("width = 640", "width = 640\nfocus = 3"), "vision.cameras.[0].focus: unknown key"),
])
def test_bad_cameras_and_zones_are_refused_with_the_reason(patch, needle):
    found = problems(GOOD.replace(*patch))
    assert any(needle in p for p in found), found


def test_an_unknown_detector_type_is_named_with_the_known_ones():
    found = problems(GOOD + '[vision.detector]\ntype = "yolo9000"\n')
    assert found == ["vision.detector.type: unknown detector type 'yolo9000'; known: ssd_cpu, jetson, hog"]


def test_the_debug_view_never_binds_to_a_network_address():
    found = problems(GOOD + '[vision.debug_view]\nenabled = true\nbind = "0.0.0.0"\n')
    assert any("not a loopback address" in p for p in found)


def test_duplicate_camera_and_zone_ids_and_no_cameras():
    cam = GOOD.split("[vision]\n", 1)[1]
    assert any("appear more than once" in p for p in problems(GOOD + cam))
    zone = '[[vision.cameras.zones]]\nid = "B"\npolygon = [[0, 0], [10, 0], [10, 10]]\n'
    assert any("zone id 'B' appears twice" in p for p in problems(GOOD + zone))
    assert any("vision.cameras" in p for p in problems("[vision]\ncameras = []\n"))


def test_create_refuses_an_unknown_type_even_past_validation():
    class Cfg:
        type = "yolo9000"

    with pytest.raises(ConfigError) as e:
        api.create(Cfg())
    assert "yolo9000" in e.value.problems[0] and "ssd_cpu" in e.value.problems[0]

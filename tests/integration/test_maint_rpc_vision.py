"""vision ``cameras`` and ``snapshot`` (the maintenance page's cameras view) from the real service process
watching the composite clip (real people), plus a camera that never delivers a frame."""
from __future__ import annotations

import time

import numpy as np
import pytest

from endcap.core import messages as m
from endcap.core.bus import RpcClient
from endcap.core.errors import RemoteError
from endcap.launcher import wait_health
from tests.fixtures.vision import aisle_clip, camera_toml, vision_toml  # noqa: F401 - fixture
from tests.fixtures.waiting import until




def test_cameras_report_state_and_the_snapshot_is_a_blurred_jpeg_with_zones(gateway, aisle_clip):  # noqa: F811
    import cv2

    gateway.write_config(vision_toml(camera_toml(aisle_clip, "cam1", speed=1.0, loop=True),
                                     camera_toml(aisle_clip, "gone", source="/nonexistent/aisle.avi")))
    gateway.start("vision", timeout_s=60)
    wait_health(gateway.paths, "vision", lambda h: h.counters.get("camera.cam1.frames", 0) > 10, timeout_s=60)
    with RpcClient(gateway.paths.rpc_address("vision"), "test", timeout_ms=5000) as rpc:
        cams = {c.camera: c for c in rpc.call("cameras", m.Empty(), m.CamerasReply).cameras}
        assert set(cams) == {"cam1", "gone"}
        cam1, gone = cams["cam1"], cams["gone"]
        assert cam1.ok and cam1.fps > 1 and cam1.frames > 10 and abs(time.time() - cam1.last_frame_at) < 5
        assert (cam1.width, cam1.height) == (aisle_clip.spec.width, aisle_clip.spec.height)
        want = {z.id: [tuple(float(v) for v in p) for p in z.polygon] for z in aisle_clip.spec.zones}
        assert {z.name: [tuple(p) for p in z.polygon] for z in cam1.zones} == want
        assert not gone.ok and gone.frames == 0 and gone.last_frame_at is None and gone.fps == 0.0
        assert [z.name for z in gone.zones] == ["A", "B", "C"]  # zones in configured pixels until a frame arrives

        # a snapshot while someone is in view: JPEG, smaller than the frame, taken just now
        t0 = time.time()
        snap = rpc.call("snapshot", m.SnapshotRequest("cam1"), m.Snapshot)
        assert snap.camera == "cam1" and snap.jpeg[:2] == b"\xff\xd8" and t0 - 5 < snap.taken_at <= time.time()
        img = cv2.imdecode(np.frombuffer(snap.jpeg, np.uint8), cv2.IMREAD_COLOR)
        assert img is not None and img.shape[1] == 320 and img.shape[0] == 180
        zone_px = np.linalg.norm(img.astype(np.float32) - np.array((0, 200, 255), np.float32), axis=2) < 40
        assert zone_px.sum() > 200  # the zone outlines are drawn
        later = until(lambda: rpc.call("snapshot", m.SnapshotRequest("cam1"), m.Snapshot), lambda s: s.taken_at > snap.taken_at, 30.0)
        assert later.jpeg != snap.jpeg

        def person_outlined(s: m.Snapshot) -> bool:  # the service hands its detections to the blur
            im = cv2.imdecode(np.frombuffer(s.jpeg, np.uint8), cv2.IMREAD_COLOR)
            return int((np.linalg.norm(im.astype(np.float32) - np.array((60, 220, 60), np.float32), axis=2) < 45).sum()) > 40
        until(lambda: rpc.call("snapshot", m.SnapshotRequest("cam1"), m.Snapshot), person_outlined, 30.0)

        with pytest.raises(RemoteError) as e:
            rpc.call("snapshot", m.SnapshotRequest("gone"), m.Snapshot)
        assert e.value.code == "no_frame" and "camera gone" in str(e.value)
        with pytest.raises(RemoteError) as e:
            rpc.call("snapshot", m.SnapshotRequest("cam9"), m.Snapshot)
        assert e.value.code == "unknown_camera" and "'cam9'" in str(e.value) and "cam1, gone" in str(e.value)

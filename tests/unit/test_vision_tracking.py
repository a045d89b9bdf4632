"""Re-linking fragmented tracks inside zones (pure) and the real ByteTrack from ``trackers`` underneath."""
from __future__ import annotations

import numpy as np

from endcap.vision.detectors.api import Detections
from endcap.vision.tracking import ByteTracker, Relinker
from endcap.vision.zones import point_in_polygon

ZONE = ((100.0, 100.0), (300.0, 100.0), (300.0, 200.0), (100.0, 200.0))


def box(x: float, y: float, h: float = 120.0):
    return (x - 20.0, y - h, x + 20.0, y)


def relinker(**kw) -> Relinker:
    return Relinker(lambda p: point_in_polygon(p, ZONE), **kw)


def test_a_new_tracker_id_where_a_shopper_was_lost_in_a_zone_keeps_their_id():
    r = relinker()
    (a,) = r.assign(0.0, [(7, box(200, 150), 0.9)])
    assert r.assign(0.5, []) == []  # hidden by a passer-by
    (b,) = r.assign(1.5, [(9, box(210, 152), 0.8)])  # the tracker gave up and starts a new id
    assert b.track_id == a.track_id and r.relinked == 1


def test_no_relinking_outside_zones_or_far_away_or_too_late_or_different_size():
    for lost_at, found_at, t, h in [((200, 260), (205, 262), 1.0, 120),  # lost outside the zone
                                    ((200, 150), (300, 150), 1.0, 120),  # too far (100 px > 0.75 × 120)
                                    ((200, 150), (200, 150), 5.0, 120),  # after the window
                                    ((200, 150), (200, 150), 1.0, 220)]:  # a much taller person
        r = relinker(window_s=3.0)
        (a,) = r.assign(0.0, [(1, box(*lost_at), 0.9)])
        (b,) = r.assign(t, [(2, box(*found_at, h=h), 0.9)])
        assert b.track_id != a.track_id


def test_stable_ids_are_unique_per_frame_even_if_the_old_tracker_id_returns():
    r = relinker()
    (a,) = r.assign(0.0, [(1, box(200, 150), 0.9)])
    r.assign(0.5, [])
    r.assign(1.0, [(2, box(200, 150), 0.9)])  # re-linked to a
    both = r.assign(1.1, [(1, box(200, 150), 0.9), (2, box(205, 150), 0.9)])  # the old id comes back too
    ids = [t.track_id for t in both]
    assert len(set(ids)) == 2 and a.track_id in ids


def test_two_newcomers_cannot_take_the_same_lost_identity():
    r = relinker()
    (a,) = r.assign(0.0, [(1, box(200, 150), 0.9)])
    out = r.assign(1.0, [(2, box(200, 150), 0.9), (3, box(215, 150), 0.9)])
    assert sorted(t.track_id for t in out)[0] == a.track_id and len({t.track_id for t in out}) == 2


def test_bytetrack_follows_a_walking_box_and_confirms_after_two_frames():
    bt = ByteTracker(fps=10.0)
    ids = []
    for i in range(12):
        x = 100 + 8 * i
        ids.append([tid for tid, _, _ in bt.update(Detections.of([[x, 50, x + 40, 170]], [0.9]))])
    assert ids[0] == []  # unconfirmed on its first frame
    assert len({tuple(i) for i in ids[1:]}) == 1 and len(ids[1]) == 1


def test_bytetrack_keeps_a_weak_detection_on_an_existing_track_only():
    bt = ByteTracker(fps=10.0, activation=0.6, high=0.5)
    for _ in range(3):
        out = bt.update(Detections.of([[100, 50, 140, 170]], [0.9]))
    (tid, _, _), = out
    # a weak box on the same person continues the track; a weak box elsewhere starts nothing
    out = bt.update(Detections.of([[101, 50, 141, 170], [400, 50, 440, 170]], [0.45, 0.45]))
    assert [t for t, _, _ in out] == [tid]
    assert np.allclose(out[0][1], (101, 50, 141, 170))

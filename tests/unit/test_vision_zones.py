"""The pure zone logic: polygon validation, the foot point, and the enter/dwell/exit/focus/confidence machine.

Frames are synthetic (10 fps) so every expected number follows from the rules by hand.
"""
from __future__ import annotations

import pytest

from endcap.vision.zones import (Observation, Rules, Zone, ZoneEngine, foot_point, point_in_polygon, polygon_problems,
                                 segments_intersect)

SQUARE = ((100.0, 100.0), (300.0, 100.0), (300.0, 200.0), (100.0, 200.0))
FPS = 10.0


def box_at(x: float, y: float, h: float = 120.0) -> tuple[float, float, float, float]:
    """A person box whose foot point is (x, y)."""
    return (x - h / 6, y - h, x + h / 6, y)


def in_zone_span(path) -> float:
    """Seconds from the first to the last frame with the foot point in SQUARE (the dwell by definition)."""
    idx = [i for i, p in enumerate(path) if p and point_in_polygon(p, SQUARE)]
    return (idx[-1] - idx[0]) / FPS


def run(engine: ZoneEngine, path, t0: float = 0.0, track: int = 1, score: float = 0.95):
    """Feed (x, y) per frame (None: not seen that frame); return all updates."""
    out = []
    for i, p in enumerate(path):
        obs = [] if p is None else [Observation(track, box_at(*p), score)]
        out += engine.update(t0 + i / FPS, obs)
    return out


def walk(a, b, seconds: float):
    n = int(round(seconds * FPS))
    return [(a[0] + (b[0] - a[0]) * i / n, a[1] + (b[1] - a[1]) * i / n) for i in range(1, n + 1)]


# --- geometry -------------------------------------------------------------------------------------

def test_foot_point_is_bottom_centre():
    assert foot_point((10, 20, 30, 80)) == (20, 80)


def test_a_good_polygon_has_no_problems():
    assert polygon_problems([[10, 10], [200, 10], [220, 150], [5, 150]], 640, 360) == []


@pytest.mark.parametrize("points, needle", [
    ([[0, 0], [700, 0], [10, 10]], "outside the 640x360 frame"),
    ([[0, 0], [10, -1], [10, 10]], "outside"),
    ([[0, 0], [100, 100], [100, 0], [0, 100]], "self-intersecting"),
    ([[0, 0], [200, 0], [200, 100], [100, -0.0 + 50], [50, 0]], "self-intersecting"),  # a vertex on another edge
    ([[0, 0], [10, 10], [20, 20]], "no area"),
    ([[0, 0], [10, 10]], "at least 3 points"),
    ([[0, 0], [10, 0], [10, 10], [0, 0]], "repeats a point"),
])
def test_bad_polygons_are_explained(points, needle):
    problems = polygon_problems(points, 640, 360)
    assert any(needle in p for p in problems), problems


def test_segments_touching_count_as_intersecting():
    assert segments_intersect((0, 0), (10, 0), (5, 0), (5, 5))
    assert not segments_intersect((0, 0), (10, 0), (0, 1), (10, 1))


def test_point_in_polygon_inside_outside_boundary_and_concave():
    assert point_in_polygon((150, 150), SQUARE)
    assert not point_in_polygon((50, 150), SQUARE)
    assert point_in_polygon((100, 150), SQUARE)  # on the edge counts
    concave = ((0, 0), (100, 0), (100, 100), (50, 40), (0, 100))
    assert point_in_polygon((10, 50), concave) and not point_in_polygon((50, 80), concave)


# --- the state machine ----------------------------------------------------------------------------

def engine(**kw) -> ZoneEngine:
    return ZoneEngine([Zone("B", SQUARE)], Rules(**kw))


def test_a_shopper_who_walks_up_and_stands_enters_dwells_and_exits_with_exact_seconds():
    e = engine()
    path = walk((200, 330), (200, 150), 1.8) + [(200, 150)] * 60 + walk((200, 150), (200, 330), 1.8) + [None] * 20
    ups = run(e, path)
    kinds = [u.kind for u in ups]
    assert kinds[0] == "enter" and kinds[-1] == "exit" and kinds.count("enter") == 1 and kinds.count("exit") == 1
    assert set(kinds[1:-1]) == {"dwell"}
    first_in = next(i for i, p in enumerate(path) if p and 100 <= p[1] <= 200) / FPS
    last_in = max(i for i, p in enumerate(path) if p and 100 <= p[1] <= 200) / FPS
    exit_ = ups[-1]
    assert exit_.dwell_s == pytest.approx(last_in - first_in, abs=1e-6)
    assert exit_.first_t == pytest.approx(first_in)
    # the exit comes once the person was absent for the grace period, not before
    assert exit_.t - last_in > Rules().exit_grace_s and exit_.t - last_in <= Rules().exit_grace_s + 1 / FPS + 1e-9
    dwell_times = [u.t for u in ups if u.kind == "dwell"]
    assert all(b - a == pytest.approx(1.0, abs=0.11) for a, b in zip(dwell_times, dwell_times[1:]))
    assert all(u.confidence > 0.85 for u in ups)
    assert 0.8 <= exit_.focus <= 1.0  # walked toward the shelf ("up") and stood still most of the visit


def test_an_occlusion_shorter_than_the_grace_keeps_one_visit():
    e = engine()
    path = walk((200, 330), (200, 150), 1.8) + [(200, 150)] * 30 + [None] * 10 + [(200, 150)] * 30 + [None] * 20
    ups = run(e, path)
    assert [u.kind for u in ups].count("enter") == 1 and [u.kind for u in ups].count("exit") == 1
    assert ups[-1].dwell_s == pytest.approx(in_zone_span(path), abs=1e-6)  # the hidden second counts


def test_an_absence_longer_than_the_grace_ends_the_visit():
    e = engine()
    path = walk((200, 330), (200, 150), 1.8) + [(200, 150)] * 40 + [None] * 20 + [(200, 150)] * 40 + [None] * 20
    kinds = [u.kind for u in run(e, path)]
    assert kinds.count("exit") == 2


def test_walking_through_never_passes_the_gate():
    e = engine()
    ups = run(e, walk((0, 150), (400, 150), 2.0) + [None] * 20)  # 1 s inside the zone
    assert ups == []


def test_a_static_false_positive_in_the_zone_never_triggers():
    e = engine()
    ups = run(e, [(200, 150)] * 200 + [None] * 20, score=0.95)  # a poster: born in the zone, never moves
    assert ups == []


def test_a_weakly_detected_but_persistent_shopper_is_confirmed_by_repeated_looks():
    e = engine()
    ups = run(e, walk((200, 330), (200, 150), 1.8) + [(200, 150)] * 60, score=0.55)
    enter = next(u for u in ups if u.kind == "enter")
    # one look at 0.55 is weak evidence; ~4 independent looks at 0.55 pass the gate
    assert enter.confidence > 0.85 and enter.dwell_s >= 1.7


def test_gate_and_coverage_hold_events_back_while_the_person_is_hidden():
    e = engine(exit_grace_s=5.0)
    path = walk((200, 330), (200, 150), 1.8) + [(200, 150)] * 30 + [None] * 30 + [(200, 150)] * 5
    ups = run(e, path)
    hidden_from, hidden_to = (18 + 30) / FPS, (18 + 60) / FPS
    assert not [u for u in ups if u.kind == "dwell" and hidden_from + 1.0 < u.t <= hidden_to]


def test_focus_is_low_for_someone_who_backed_into_the_zone():
    e = engine()
    ups = run(e, walk((200, 0 + 110), (200, 190), 1.0) + [(200, 190)] * 60 + [None] * 20)
    # walked "down" (away from the shelf, which is "up") and stopped: facing away
    assert ups[-1].kind == "exit" and ups[-1].focus < 0.3


def test_a_one_frame_blip_into_the_zone_does_not_start_the_visit_early():
    e = engine()
    # walking along below the zone; one truncated box puts the foot point inside for a single frame
    path = [(200, 260)] * 5 + [(200, 190)] + [(200, 260)] * 8 + walk((200, 260), (200, 150), 1.0) + [(200, 150)] * 40 + [None] * 20
    ups = run(e, path)
    real_entry = next(i for i, p in enumerate(path) if i > 6 and p and point_in_polygon(p, SQUARE)) / FPS
    assert ups[-1].kind == "exit" and ups[-1].first_t == pytest.approx(real_entry)


def test_the_foot_point_decides_not_the_head():
    e = ZoneEngine([Zone("B", SQUARE)])
    # head inside the zone, feet below it
    assert e.zones_of((180, 120, 220, 260)) == []
    assert e.zones_of((180, 60, 220, 180)) == ["B"]


def test_flush_closes_confirmed_visits_only():
    e = engine()
    run(e, walk((200, 330), (200, 150), 1.8) + [(200, 150)] * 40)
    run(e, [(120, 150)], t0=5.9, track=2)  # unconfirmed newcomer
    out = e.flush(6.0)
    assert [(u.kind, u.track_id) for u in out] == [("exit", 1)]
    assert e.open_visits == 0


def test_the_machine_is_deterministic():
    path = walk((200, 330), (200, 150), 1.8) + [(200, 150)] * 40 + [None] * 20
    assert run(engine(), path) == run(engine(), path)

"""Proof-of-play log on real files (append, torn tail, rotation) and the SSE ring's replay rules."""
import json
import threading

from endcap.signage import proof
from endcap.signage.hub import Hub, parse_event_id, select_replay
from endcap.signage.playlist import Card


def rec(i: int) -> dict:
    return {"rid": f"p-{i}", "type": "loop", "display": "d", "item": "a", "offer_id": None, "from": i, "to": i + 1}


def test_appends_are_lines_and_survive_reopen(tmp_path):
    log = proof.ProofLog(tmp_path, rotate_bytes=1 << 20, keep_files=3)
    assert log.append([rec(1), rec(2)]) == 2 and log.append([]) == 0
    log.close()
    log = proof.ProofLog(tmp_path, rotate_bytes=1 << 20, keep_files=3)
    log.append([rec(3)])
    log.close()
    assert [r["rid"] for r in proof.read(tmp_path / proof.CURRENT)] == ["p-1", "p-2", "p-3"]


def test_a_torn_last_line_is_closed_and_skipped(tmp_path):
    (tmp_path / proof.CURRENT).write_bytes(json.dumps(rec(1)).encode() + b"\n" + b'{"rid": "p-2", "ty')
    log = proof.ProofLog(tmp_path, rotate_bytes=1 << 20, keep_files=3)
    log.append([rec(3)])
    log.close()
    assert [r["rid"] for r in proof.read(tmp_path / proof.CURRENT)] == ["p-1", "p-3"]


def test_rotation_keeps_the_newest_files_and_loses_no_record_in_kept_ones(tmp_path):
    log = proof.ProofLog(tmp_path, rotate_bytes=4096, keep_files=2)
    for i in range(200):
        log.append([rec(i)])
    log.close()
    rotated = log.rotated()
    assert len(rotated) == 2
    rids = [r["rid"] for f in log.files() for r in proof.read(f)]
    assert rids == [f"p-{i}" for i in range(200 - len(rids), 200)]  # contiguous, newest last, none lost


def test_concurrent_appends_never_interleave(tmp_path):
    log = proof.ProofLog(tmp_path, rotate_bytes=1 << 24, keep_files=2)
    threads = [threading.Thread(target=lambda k=k: [log.append([rec(k * 1000 + i)] * 3) for i in range(100)]) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    log.close()
    assert len(proof.read(tmp_path / proof.CURRENT)) == 1200


def card(i: str, ttl: float = 10.0) -> Card:
    return Card(i, "z", "s", "t", "", None, None, None, False, ttl)


def test_event_ids_parse_strictly():
    assert parse_event_id("ab12-7") == ("ab12", 7)
    for bad in (None, "", "7", "ab12-", "-7", "ab-x", "a" * 80):
        assert parse_event_id(bad) is None


def test_replay_gives_the_newest_live_offer_not_seen_and_a_foreign_boot_counts_as_nothing_seen():
    hub = Hub(["d1", "d2"], ring_size=3, boot="b1")
    hub.push(["d1"], card("o1"), now=100.0)
    hub.push(["d1", "d2"], card("o2"), now=100.0)
    hub.push(["d1"], card("o3", ttl=1.0), now=100.0)
    ids = lambda evs: [e.card.offer_id for e in evs]  # noqa: E731
    assert ids(hub.replay("d1", None, now=100.5)[0]) == ["o3"]
    assert ids(hub.replay("d1", "b1-3", now=100.5)[0]) == []  # seen it
    assert ids(hub.replay("d1", "b1-1", now=100.5)[0]) == ["o3"]  # missed two: the newest supersedes
    assert ids(hub.replay("d1", "b1-1", now=101.5)[0]) == []  # the newest expired: the loop, not an older offer
    assert ids(hub.replay("d1", "old-99", now=100.5)[0]) == ["o3"]  # a restart
    assert ids(hub.replay("d2", "b1-1", now=100.5)[0]) == ["o2"]
    assert ids(select_replay([], "b1", None, now=0.0)) == []


def test_wait_wakes_on_push_with_the_newest_offer_and_on_close():
    hub = Hub(["d"], ring_size=4, boot="b")
    clock = lambda: 0.0  # noqa: E731
    _, cursor = hub.replay("d", None, now=0.0)
    got = []
    t = threading.Thread(target=lambda: got.append(hub.wait("d", cursor, 10, clock)))
    t.start()
    hub.push(["d"], card("o1"), now=0.0)
    t.join(5)
    events, new_cursor = got[0]
    assert [e.card.offer_id for e in events] == ["o1"] and new_cursor == 1
    hub.push(["d"], card("o2"), now=0.0)
    hub.push(["d"], card("o3"), now=0.0)
    assert [e.card.offer_id for e in hub.wait("d", new_cursor, 0.05, clock)[0]] == ["o3"]  # a burst: its last
    assert hub.wait("d", 3, 0.05, clock) == ([], 3)
    t = threading.Thread(target=lambda: got.append(hub.wait("d", 3, 10, clock)))
    t.start()
    hub.close()
    t.join(5)
    assert not t.is_alive() and got[1] == ([], 3) and hub.closed

"""Pure core pieces: backoff, health, time conversions, sd_notify parsing."""
import socket
import tempfile

import pytest

from endcap.core import timeutil
from endcap.core.backoff import Backoff
from endcap.core.errors import UpstreamRetryable
from endcap.core.health import HealthState
from endcap.core.systemd import Notifier


def test_backoff_grows_caps_and_jitters():
    b = Backoff(base_s=1, cap_s=30)
    assert b.delay(1, 0.999) < 1.0
    assert b.delay(4, 0.5) == 4.0
    assert b.delay(20, 0.999) <= 30
    assert b.delay(3, 0.0) == 0.0


def test_backoff_honours_retry_after_as_floor():
    b = Backoff(base_s=1, cap_s=30)
    assert b.delay(1, 0.1, retry_after=7) == 7
    assert b.delay(10, 0.9, retry_after=2) == pytest.approx(27)
    with pytest.raises(ValueError):
        b.delay(0, 0.5)


def test_health_tracks_flow_not_flags():
    h = HealthState("pos", stale_after_s=10)
    assert not h.is_ok(100) and h.snapshot(100).status.startswith("starting")
    h.success(100)
    assert h.is_ok(105)
    assert not h.is_ok(111)  # no work for longer than stale_after: not ok
    h.failure(UpstreamRetryable("db down", code="unreachable"), 106)
    snap = h.snapshot(107)
    assert not snap.ok and snap.last_error.code == "unreachable" and "db down" in snap.status
    h.success(108)
    assert h.is_ok(108)


def test_time_conversions_are_exact():
    us = timeutil.us_from_text("2017-01-01 11:53:26.123456")
    assert us == 1483271606123456
    assert timeutil.text_from_us(us) == "2017-01-01 11:53:26.123456"
    assert timeutil.us_from_text("2017-01-01T12:53:26.123456+01:00") == us
    assert timeutil.us_from_text("2017-01-01T11:53:26.123456Z") == us
    assert timeutil.day_of_us(us) == "2017-01-01"
    start, end = timeutil.day_bounds_us("2017-01-01")
    assert start <= us < end and end - start == 86_400_000_000


def test_notifier_sends_ready_and_parses_watchdog():
    d = tempfile.mkdtemp(prefix="ecn-")
    path = f"{d}/n"
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(path)
    n = Notifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "4000000"})
    assert n.enabled and n.watchdog_interval_s == 2.0
    n.ready("hi")
    assert s.recv(100) == b"READY=1\nSTATUS=hi"
    s.close()
    assert not Notifier({}).enabled
    assert Notifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "10", "WATCHDOG_PID": "1"}).watchdog_interval_s is None


def test_atomic_write_replaces_whole_file_and_leaves_no_temp(tmp_path):
    from endcap.core.atomic import atomic_write

    target = tmp_path / "sub" / "f.toml"
    atomic_write(target, b"one")
    atomic_write(target, b"two", mode=0o600)
    assert target.read_bytes() == b"two"
    assert (target.stat().st_mode & 0o777) == 0o600
    assert [p.name for p in target.parent.iterdir()] == ["f.toml"]


def test_atomic_write_failure_keeps_the_old_file(tmp_path):
    from endcap.core.atomic import atomic_write

    target = tmp_path / "f"
    atomic_write(target, b"old")
    with pytest.raises(TypeError):
        atomic_write(target, "not bytes")  # fails while writing the temp file
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["f"]

"""``fetch.download`` against a real HTTP server with Range support: resume, limit, refusals."""
from __future__ import annotations

import hashlib
import os
import time

import pytest

from endcap.core.errors import IntegrityError, UpdateError
from endcap.updater.fetch import DownloadStats, Target, download

SIZE = 512 << 10


@pytest.fixture
def served(tmp_path, static_http):
    d = tmp_path / "www"
    d.mkdir()
    data = os.urandom(SIZE)
    (d / "b.raucb").write_bytes(data)
    srv = static_http(d)
    return srv, Target("bundles/b.raucb", SIZE, {"sha256": hashlib.sha256(data).hexdigest()}, {}), data


def test_cut_then_resume_fetches_only_the_rest(tmp_path, served):
    srv, t, data = served
    dest = tmp_path / "dl" / "b.raucb"
    srv.cut_after["/b.raucb"] = 200_000
    with pytest.raises(UpdateError, match="cut at 200000 of") as e:
        download(f"{srv.url}/b.raucb", t, dest)
    assert e.value.code == "network" and not dest.exists()
    del srv.cut_after["/b.raucb"]
    stats = DownloadStats()
    assert download(f"{srv.url}/b.raucb", t, dest, stats=stats).read_bytes() == data
    assert stats.resumed_from == 200_000 and stats.fetched == SIZE - 200_000
    assert srv.requests[-1] == ("/b.raucb", "bytes=200000-")
    assert not dest.with_name("b.raucb.part").exists()


def test_bandwidth_limit_holds(tmp_path, served):
    srv, t, _ = served
    t0 = time.monotonic()
    download(f"{srv.url}/b.raucb", t, tmp_path / "a" / "b.raucb", bandwidth=512 << 10)
    limited = time.monotonic() - t0
    assert limited >= 0.7  # 512 KiB at 512 KiB/s with a 128 KiB burst: at least 0.75 s


def test_wrong_bytes_are_refused_and_dropped(tmp_path, served):
    srv, t, data = served
    dest = tmp_path / "dl" / "b.raucb"
    bad = Target(t.path, t.length, {"sha256": "00" * 32}, {})
    with pytest.raises(IntegrityError, match="does not match TUF") as e:
        download(f"{srv.url}/b.raucb", bad, dest)
    assert e.value.code == "tampered" and not dest.exists() and not dest.with_name("b.raucb.part").exists()
    longer = Target(t.path, t.length + 10, t.hashes, {})  # the server's copy is shorter than TUF says
    with pytest.raises(IntegrityError, match="server offers") as e:
        download(f"{srv.url}/b.raucb", longer, dest)
    assert e.value.code == "truncated"
    with pytest.raises(UpdateError, match="HTTP 404"):
        download(f"{srv.url}/missing.raucb", t, dest)

"""The static HTTP fixture: whole files, byte ranges (206/416) and cut connections, over real sockets."""
from __future__ import annotations

import http.client

import pytest


def get(url: str, path: str, headers: dict | None = None):
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    conn.request("GET", path, headers=headers or {})
    resp = conn.getresponse()
    try:
        body = resp.read()
    except http.client.IncompleteRead as e:
        body = e.partial
    conn.close()
    return resp, body


@pytest.fixture
def served(tmp_path, static_http):
    data = bytes(range(256)) * 40
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "f.bin").write_bytes(data)
    return static_http(tmp_path / "d"), data


def test_whole_and_ranges(served):
    srv, data = served
    r, body = get(srv.url, "/f.bin")
    assert r.status == 200 and body == data and r.getheader("Accept-Ranges") == "bytes"
    r, body = get(srv.url, "/f.bin", {"Range": "bytes=100-199"})
    assert r.status == 206 and body == data[100:200] and r.getheader("Content-Range") == f"bytes 100-199/{len(data)}"
    r, body = get(srv.url, "/f.bin", {"Range": "bytes=5000-"})
    assert r.status == 206 and body == data[5000:]
    r, body = get(srv.url, "/f.bin", {"Range": "bytes=-10"})
    assert r.status == 206 and body == data[-10:]
    r, _ = get(srv.url, "/f.bin", {"Range": f"bytes={len(data)}-"})
    assert r.status == 416 and r.getheader("Content-Range") == f"bytes */{len(data)}"
    r, _ = get(srv.url, "/missing")
    assert r.status == 404
    assert ("/f.bin", "bytes=100-199") in srv.requests


def test_cut_then_resume(served):
    srv, data = served
    srv.cut_after["/f.bin"] = 1000
    _, first = get(srv.url, "/f.bin")
    assert first == data[:1000]
    del srv.cut_after["/f.bin"]
    r, rest = get(srv.url, "/f.bin", {"Range": f"bytes={len(first)}-"})
    assert r.status == 206 and first + rest == data

"""The signage service over plain HTTP (no browser): pages and their headers, SSE ids and
``Last-Event-ID`` replay, acknowledgement checks and the proof-of-play file, bad offers from the bus."""
from __future__ import annotations

import http.client
import json
import time
from urllib.parse import urlsplit

import pytest

from endcap.signage import proof

CONFIG = """
[[signage.displays]]
id = "aisle-7"
zones = ["shelf-7a"]
[[signage.displays]]
id = "aisle-9"
zones = ["shelf-9"]
"""


def request(url: str, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=5)
    conn.request(method, path, body=body, headers=headers or {})
    resp = conn.getresponse()
    return resp.status, dict(resp.getheaders()), resp.read()


class Stream:
    """One open event stream, read event by event (pings are skipped)."""

    def __init__(self, url: str, path: str, headers: dict | None = None) -> None:
        parts = urlsplit(url)
        self.conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=5)
        self.conn.request("GET", path, headers=headers or {})
        self.sock = self.conn.sock  # the response keeps reading from it after the connection lets go
        self.resp = self.conn.getresponse()
        assert self.resp.status == 200 and self.resp.getheader("Content-Type").startswith("text/event-stream")

    def next_offer(self, timeout_s: float = 5.0) -> dict | None:
        """The next offer event (its JSON plus ``event_id``), or None if none comes within ``timeout_s``
        (after which this stream cannot be read again)."""
        deadline = time.monotonic() + timeout_s
        cur: dict = {}
        while (left := deadline - time.monotonic()) > 0:
            self.sock.settimeout(left)
            try:
                line = self.resp.readline().decode().rstrip("\n")
            except TimeoutError:
                return None
            if line:
                key, _, value = line.partition(": ")
                cur[key] = value
            elif cur:
                if cur.get("event") == "offer":
                    return {**json.loads(cur["data"]), "event_id": cur["id"]}
                cur = {}
        return None

    def close(self) -> None:
        self.conn.close()


def first_offer(url: str, path: str, headers: dict | None = None, timeout_s: float = 5.0) -> dict | None:
    s = Stream(url, path, headers)
    try:
        return s.next_offer(timeout_s)
    finally:
        s.close()


@pytest.fixture
def served(signage):
    signage.configure(CONFIG)
    return signage, signage.start()


def test_pages_carry_a_strict_csp_and_unknown_or_hostile_ids_get_the_fallback_page(served):
    _, url = served
    status, headers, body = request(url, "GET", "/display/aisle-7")
    assert status == 200 and "script-src 'self'" in headers["Content-Security-Policy"]
    assert "'unsafe-inline'" not in headers["Content-Security-Policy"] and headers["X-Content-Type-Options"] == "nosniff"
    for hostile in ("%3Cimg%20src=x%20onerror=alert(1)%3E", "%3Cscript%3Ealert(1)%3C%2Fscript%3E", "a/b/c"):
        status, _, body = request(url, "GET", f"/display/{hostile}")
        assert status == 404 and b"builtin-fallback" in body and b"page.js" in body, hostile
        assert b"<img src=x" not in body and b"<script>alert" not in body
    status, headers, body = request(url, "GET", "/display/sw.js")
    assert status == 200 and headers["Service-Worker-Allowed"] == "/display/" and b"caches" in body
    assert request(url, "GET", "/display/creatives/..%2F..%2Fetc%2Fpasswd")[0] == 404
    assert request(url, "GET", "/display/aisle-7", headers={"Host": "evil.example:80"})[0] == 421  # DNS rebinding


def test_events_carry_ids_and_a_reconnect_gets_the_newest_live_offer_it_missed(served):
    signage, url = served
    signage.wait_bus()
    for i in range(3):
        signage.publish(signage.offer(zone="shelf-7a", title=f"Offer {i}"))
    signage.publish(signage.offer(zone="shelf-9", title="Other aisle"))
    signage.counters(lambda c: c.get("offers_routed", 0) >= 4)
    stream = Stream(url, "/display/aisle-7/events")
    try:
        first = stream.next_offer()
        assert first["title"] == "Offer 2" and 0 < first["ttl_ms"] <= 20_000  # the older two are superseded
        boot, _, seq = first["event_id"].rpartition("-")
        assert boot and seq.isdigit()
        signage.publish(signage.offer(zone="shelf-7a", title="Offer 3"))
        live = stream.next_offer()
        assert live["title"] == "Offer 3" and live["event_id"] == f"{boot}-{int(seq) + 2}"
    finally:
        stream.close()
    assert first_offer(url, "/display/aisle-7/events", {"Last-Event-ID": live["event_id"]}, 1.5) is None  # seen all
    missed = first_offer(url, "/display/aisle-7/events", {"Last-Event-ID": first["event_id"]})
    assert missed["title"] == "Offer 3"
    assert first_offer(url, f"/display/aisle-7/events?last_id={live['event_id']}", timeout_s=1.5) is None
    assert first_offer(url, "/display/aisle-7/events", {"Last-Event-ID": "0ld1-999"})["title"] == "Offer 3"  # restart
    assert first_offer(url, "/display/aisle-9/events")["title"] == "Other aisle"
    assert request(url, "GET", "/display/nope/events")[0] == 404


def test_bad_offers_are_rejected_with_reasons_and_never_streamed(served):
    signage, url = served
    signage.wait_bus()
    hostile = [signage.offer(title='<img src=x onerror="alert(1)">'), signage.offer(title="x" * 500),
               signage.offer(body="\u202eevil"), signage.offer(ttl_s=-1.0), signage.offer(image="../../etc/passwd.png")]
    for o in hostile:
        signage.publish(o)
    signage.pub.publish("offers.offer", {"offer_id": "half", "zone": "shelf-7a"})  # missing fields
    good = signage.offer(title='5 < 6 & "quotes"')
    signage.publish(good)
    c = signage.counters(lambda c: c.get("offers_rejected", 0) >= 5 and c.get("offers_malformed", 0) >= 1
                         and c.get("offers_routed", 0) >= 1)
    assert c["offers_routed"] == 1
    event = first_offer(url, "/display/aisle-7/events")
    assert event["event_id"] and event["id"] == good.offer_id and event["title"] == '5 < 6 & "quotes"'
    log = signage.gw.log("signage")
    assert "title: looks like markup" in log and "title: 500 characters" in log and "bidi-override" in log
    assert "ttl_s: -1.0 is not a positive" in log and "image: creative '../../etc/passwd.png'" in log
    assert "missing required field" in log


def ack(url: str, body, headers=None):
    h = {"Content-Type": "application/json"}
    h.update(headers or {})
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return request(url, "POST", "/display/aisle-7/ack", data, h)[0]


def test_acks_are_checked_stored_once_and_make_health_ok(served):
    signage, url = served
    h = signage.health(lambda h: not h.ok)
    assert "no acknowledgement yet from aisle-7, aisle-9" in h.status
    now = time.time() * 1000
    rec = {"rid": "s1-1", "type": "offer", "item": "sku-1", "offer_id": "o-9", "from": now - 5000, "to": now}
    showing = {"type": "loop", "item": "welcome", "since": now}
    assert ack(url, {"showing": showing, "played": [rec]}) == 204
    assert ack(url, {"showing": showing, "played": [rec]}) == 204  # a resend after a lost reply
    assert ack(url, b"not json") == 400
    assert ack(url, {"played": [dict(rec, type="popup")]}) == 400
    assert ack(url, {"played": [dict(rec, rid="s1-2", to=now - 9000)]}) == 400
    assert ack(url, {"played": [], "extra": 1}) == 400
    assert ack(url, {"played": []}, {"Content-Type": "text/plain"}) == 415
    assert ack(url, {"played": []}, {"Origin": "http://evil.example"}) == 403
    records = proof.read(signage.gw.paths.service_state("signage") / "proof" / proof.CURRENT)
    assert len(records) == 1
    r = records[0]
    assert (r["display"], r["type"], r["offer_id"], r["duration_s"]) == ("aisle-7", "offer", "o-9", 5.0)
    # aisle-9 has never acknowledged: health stays not ok, and says which screen is missing
    h = signage.health(lambda h: "aisle-9" in h.status and "aisle-7" not in h.status)
    assert not h.ok and h.counters["acks_rejected"] == 6

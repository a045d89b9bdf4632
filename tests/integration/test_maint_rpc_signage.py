"""signage ``screens`` and ``push_test_offer`` (the maintenance page's signage view) from the real service
process, with a real display page in Debian's Chromium acknowledging what it shows."""
from __future__ import annotations

import time

import pytest

from endcap.core import messages as m
from endcap.core.bus import RpcClient
from endcap.core.errors import RemoteError
from endcap.signage import proof
from tests.fixtures.signage import LOOP_TOML, open_display, wait_attr
from tests.fixtures.waiting import until

CONFIG = """
[[signage.displays]]
id = "aisle-7"
zones = ["shelf-7a"]
loop = "aisle"
[[signage.displays]]
id = "endcap-2"
zones = ["shelf-8", "shelf-9"]
""" + LOOP_TOML




def _screen(rpc, display: str) -> m.ScreenState:
    return next(s for s in rpc.call("screens", m.Empty(), m.ScreensReply).screens if s.display == display)


def test_screens_follow_the_page_and_a_test_card_is_marked_and_not_proof_of_an_offer(signage, browser_page):
    signage.configure(CONFIG, offer_ttl_max_s=3.0)
    url = signage.start()
    with RpcClient(signage.gw.paths.rpc_address("signage"), "test", timeout_ms=5000) as rpc:
        before = rpc.call("screens", m.Empty(), m.ScreensReply).screens
        assert [(s.display, s.zone, s.showing, s.acked_at) for s in before] == [
            ("aisle-7", "shelf-7a", "fallback", None), ("endcap-2", "shelf-8, shelf-9", "fallback", None)]

        page = browser_page
        t0 = time.time()
        open_display(page, url, "aisle-7")
        loop = until(lambda: _screen(rpc, "aisle-7"), lambda s: s.acked_at is not None and s.showing == "loop")
        assert loop.title is None and loop.sku is None and t0 <= loop.acked_at <= time.time()

        pushed = rpc.call("push_test_offer", m.PushTestOfferRequest("aisle-7"), m.ScreensReply)
        assert {s.display for s in pushed.screens} == {"aisle-7", "endcap-2"}
        wait_attr(page, "state", "offer", 5)
        view = page.evaluate("""() => { const o = document.getElementById('offer');
            return {id: o.dataset.offerId, test: o.dataset.test, title: o.querySelector('.offer-title').textContent,
                    outline: getComputedStyle(o).outlineStyle}; }""")
        assert view["id"].startswith("maint-test-") and view["test"] == "1" and view["outline"] == "dashed"
        assert view["title"] == "TEST - not a real offer"
        shown = until(lambda: _screen(rpc, "aisle-7"), lambda s: s.showing == "offer")
        assert (shown.title, shown.sku) == ("TEST - not a real offer", "TEST")
        assert _screen(rpc, "endcap-2").acked_at is None  # only the display asked for got it

        wait_attr(page, "state", "loop", 6)  # short TTL: the loop comes back by itself
        path = signage.gw.paths.service_state("signage") / "proof" / proof.CURRENT
        rec = until(lambda: [r for r in proof.read(path) if r.get("offer_id") == view["id"]] if path.exists() else [],
                     bool)[0]
        assert rec["type"] == "test" and rec["display"] == "aisle-7"

        # a real offer shows its own title and sku
        signage.wait_bus()
        real = signage.offer(ttl_s=3.0)
        signage.show(page, real)
        got = until(lambda: _screen(rpc, "aisle-7"), lambda s: s.showing == "offer" and s.sku == real.sku)
        assert got.title == real.title

        # an offer on the bus may not pose as a test card
        fake = signage.offer(offer_id="maint-test-forged", zone="shelf-8")
        signage.publish(fake)
        signage.counters(lambda c: c.get("offers_rejected", 0) >= 1)

        with pytest.raises(RemoteError) as e:
            rpc.call("push_test_offer", m.PushTestOfferRequest("aisle-99"), m.ScreensReply)
        assert e.value.code == "unknown_display" and "'aisle-99'" in str(e.value) and "aisle-7, endcap-2" in str(e.value)

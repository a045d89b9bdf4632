"""signage's maintenance pieces that need no server: the screens table and the test card."""
from __future__ import annotations

import time

import pytest

from endcap.core import messages as m
from endcap.signage import playlist
from endcap.signage.config import Display
from endcap.signage.maint import screen_states
from endcap.signage.web import Showing


def test_screen_states_follow_the_acknowledgements_and_name_the_offer_while_known():
    displays = [Display(id="a", zones=["z1", "z2"]), Display(id="b", zones=["*"]), Display(id="c", zones=["z3"])]
    card = playlist.maintenance_card(displays[0], "t1", 5.0)
    showing = {"a": Showing("offer", "TEST", 10.0, card.offer_id), "b": Showing("offer", "sku-9", 11.0, "o-gone"),
               "c": Showing("loop", "hero", 12.0)}
    acks = {"a": 20.0, "b": 21.0, "c": 22.0}
    got = screen_states(displays, showing, acks, lambda d, oid: card if (d, oid) == ("a", card.offer_id) else None)
    assert got[0] == m.ScreenState(display="a", zone="z1, z2", showing="offer", title="TEST - not a real offer",
                                   sku="TEST", acked_at=20.0)
    assert (got[1].showing, got[1].title, got[1].sku) == ("offer", None, "sku-9")  # left the ring: sku only
    assert (got[2].showing, got[2].title, got[2].sku, got[2].acked_at) == ("loop", None, None, 22.0)
    never = screen_states(displays, {}, {}, lambda d, o: None)
    assert all(s.showing == "fallback" and s.acked_at is None for s in never)


def test_the_test_card_is_marked_and_real_offers_cannot_use_its_prefix():
    card = playlist.maintenance_card(Display(id="a", zones=["z1"]), "x" * 80, 7.0)
    assert card.test and card.offer_id.startswith(playlist.TEST_PREFIX) and len(card.offer_id) <= 64
    page = card.to_page(7.0)
    assert page["test"] is True and page["title"].startswith("TEST") and page["ttl_ms"] == 7000
    real = m.Offer(offer_id="maint-test-1", zone="z1", sku="s", title="t", ttl_s=5.0, issued_at=time.time(),
                   relevance=0.5)
    with pytest.raises(playlist.OfferRejected, match="reserved for maintenance test cards"):
        playlist.check_offer(real, time.time(), playlist.OfferLimits(), lambda n: False)
    ok = playlist.check_offer(m.Offer(**{**{f: getattr(real, f) for f in real.__struct_fields__}, "offer_id": "o-1"}),
                              time.time(), playlist.OfferLimits(), lambda n: False)
    assert "test" not in ok.to_page(1.0)

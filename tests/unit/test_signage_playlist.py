"""Pure signage rules: which loop item is due when (windows, days, dayparts, segments), and which
offers reach which screen for how long (validation of every field, TTL cap, routing)."""
import math

import msgspec
import pytest

from endcap.core import messages as m
from endcap.signage import playlist as pl
from endcap.signage.config import Daypart, Display, Loop, LoopItem

MON, TUE, SAT = 0, 1, 5


def hm(h: int, mnt: int = 0, s: float = 0) -> float:
    return h * 3600 + mnt * 60 + s


def sched(items, dayparts=()):
    return pl.build_schedule(Loop(id="l", items=list(items)), list(dayparts))


A = LoopItem(id="a", creative="a.html", duration_s=10)
B = LoopItem(id="b", creative="b.png", duration_s=5)


def test_items_cycle_in_config_order_from_the_start_of_the_day():
    s = sched([A, B])
    assert [pl.due(s, MON, t).item.id for t in (0, 9.99, 10, 14.99, 15, 25, 30)] == ["a", "a", "b", "b", "a", "b", "a"]
    d = pl.due(s, MON, 27.5)
    assert (d.item.id, d.since, d.until, d.fallback) == ("b", 25, 30, False)
    assert d.item.kind == "image" and pl.due(s, MON, 0).item.kind == "html"


def test_time_window_and_wrap_past_midnight():
    night = LoopItem(id="night", creative="n.html", duration_s=10, start="22:00", end="02:00")
    s = sched([A, night])
    assert [i.id for i in pl.eligible(s, MON, hm(21, 59))] == ["a"]
    assert [i.id for i in pl.eligible(s, MON, hm(22))] == ["a", "night"]
    assert [i.id for i in pl.eligible(s, TUE, hm(1, 59))] == ["a", "night"]
    assert [i.id for i in pl.eligible(s, TUE, hm(2))] == ["a"]


def test_days_match_the_calendar_day():
    weekend = LoopItem(id="w", creative="w.html", days=["sat", "sun"])
    s = sched([weekend])
    assert pl.due(s, SAT, hm(12)).item.id == "w"
    d = pl.due(s, MON, hm(12))
    assert d.fallback and d.item.id == "fallback" and (d.since, d.until) == (0, 86400)


def test_daypart_boundary_switches_the_loop_and_starts_it_at_its_first_item():
    parts = [Daypart(name="breakfast", start="06:00", end="11:00"), Daypart(name="lunch", start="11:00", end="14:30")]
    coffee = LoopItem(id="coffee", creative="c.html", duration_s=7, dayparts=["breakfast"])
    sandwich = LoopItem(id="sandwich", creative="s.html", duration_s=9, dayparts=["lunch"])
    soup = LoopItem(id="soup", creative="soup.html", duration_s=9, dayparts=["lunch"])
    s = sched([coffee, sandwich, soup, B], parts)
    before = pl.due(s, MON, hm(10, 59, 59))
    assert before.daypart == "breakfast" and before.item.id in ("coffee", "b") and before.until == hm(11)
    after = pl.due(s, MON, hm(11, 0, 0.5))
    assert (after.daypart, after.item.id, after.since) == ("lunch", "sandwich", hm(11))
    assert pl.due(s, MON, hm(11, 0, 9)).item.id == "soup"
    assert pl.due(s, MON, hm(11, 0, 18)).item.id == "b"  # items without dayparts play in every daypart
    assert pl.due(s, MON, hm(15)).daypart is None and pl.due(s, MON, hm(15)).item.id == "b"


def test_first_matching_daypart_wins_and_an_item_end_is_cut_at_the_segment_end():
    parts = [Daypart(name="promo", start="12:00", end="12:01"), Daypart(name="day", start="08:00", end="20:00")]
    s = sched([LoopItem(id="long", creative="l.html", duration_s=3600)], parts)
    assert pl.daypart_at(s, MON, hm(12, 0, 30)) == "promo"
    assert pl.daypart_at(s, MON, hm(12, 1)) == "day"
    d = pl.due(s, MON, hm(11, 59))
    assert d.item.id == "long" and d.since == hm(8) + 3600 * 3 and d.until == hm(12)


def test_due_rejects_impossible_times():
    s = sched([A])
    for wd, sec in ((MON, -1), (MON, 86400), (7, 0)):
        with pytest.raises(ValueError):
            pl.due(s, wd, sec)


def test_page_schedule_flags_missing_creatives_and_resolves_builtins():
    s = sched([A, LoopItem(id="w", creative="builtin:welcome.html")])
    page = pl.page_schedule(s, present=lambda name: False)
    assert page["items"][0]["missing"] is True and page["items"][0]["url"] == "/display/creatives/a.html"
    assert page["items"][1]["missing"] is False and page["items"][1]["url"] == "/display/static/builtin/welcome.html"
    assert page["boundaries"] == [0, 86400] and page["fallback"]["id"] == "fallback"


# --- offers ------------------------------------------------------------------------------------

NOW = 1_700_000_000.0
LIMITS = pl.OfferLimits(title_max=40, body_max=100, ttl_max_s=30.0)


def offer(**kw) -> m.Offer:
    base = dict(offer_id="o-1", zone="z7", sku="sku-1", title="Dark roast", ttl_s=10.0, issued_at=NOW - 1,
                relevance=0.3, body="With your croissant", price=7.49, discount_pct=20.0, image="coffee.png")
    base.update(kw)
    return m.Offer(**base)


def check(o, exists=lambda name: True):
    return pl.check_offer(o, NOW, LIMITS, exists)


def test_a_good_offer_becomes_a_card_with_its_remaining_ttl():
    card = check(offer())
    assert card.title == "Dark roast" and card.image == "coffee.png" and not card.image_missing
    assert card.ttl_s == pytest.approx(9.0)
    page = card.to_page(4.5)
    assert page["ttl_ms"] == 4500 and page["image"] == "/display/creatives/coffee.png" and page["id"] == "o-1"


def test_ttl_is_capped_and_expired_or_future_offers_are_rejected():
    assert check(offer(ttl_s=600, issued_at=NOW)).ttl_s == 30.0
    with pytest.raises(pl.OfferRejected, match="ttl_s: expired"):
        check(offer(ttl_s=5, issued_at=NOW - 6))
    with pytest.raises(pl.OfferRejected, match="issued_at: .* in the future"):
        check(offer(issued_at=NOW + 60))
    for bad in (0.0, -1.0, math.inf, math.nan):
        with pytest.raises(pl.OfferRejected, match="ttl_s"):
            check(offer(ttl_s=bad))


@pytest.mark.parametrize("fields, reason", [
    ({"title": "<img src=x onerror=alert(1)>"}, "title: looks like markup"),
    ({"body": "see </p><script>x()</script>"}, "body: looks like markup"),
    ({"title": "Free \u202egnp.exe"}, "title: contains control or bidi-override"),
    ({"title": "two\nlines"}, "title: contains control"),
    ({"title": "   "}, "title: empty"),
    ({"title": "x" * 41}, "title: 41 characters, more than 40"),
    ({"body": "y" * 101}, "body: 101 characters"),
    ({"offer_id": "../../etc"}, "offer_id"),
    ({"offer_id": ""}, "offer_id"),
    ({"zone": ""}, "zone: empty"),
    ({"sku": "s" * 65}, "sku: 65 characters"),
    ({"price": -1.0}, "price"),
    ({"price": math.nan}, "price"),
    ({"discount_pct": 150.0}, "discount_pct"),
    ({"relevance": 2.0}, "relevance"),
    ({"image": "../secret.png"}, "image: creative"),
    ({"image": "https://evil.example/x.png"}, "image"),
    ({"image": "page.html"}, "image: not an image"),
])
def test_hostile_or_malformed_fields_are_rejected_naming_the_field(fields, reason):
    with pytest.raises(pl.OfferRejected, match=reason.replace("(", r"\(")):
        check(offer(**fields))


def test_plain_text_that_merely_contains_symbols_is_kept_verbatim():
    card = check(offer(title='5 < 6 & "quotes"', body="line one\nline two & more"))
    assert card.title == '5 < 6 & "quotes"' and card.body == "line one\nline two & more"


def test_missing_image_falls_back_and_no_image_is_fine():
    card = check(offer(image="gone.png"), exists=lambda name: False)
    assert card.image is None and card.image_missing
    assert check(offer(image=None)).image is None and not check(offer(image=None)).image_missing


def test_missing_fields_never_decode_into_an_offer():
    raw = msgspec.msgpack.encode({"offer_id": "o", "zone": "z"})
    with pytest.raises(msgspec.ValidationError, match="missing required field"):
        msgspec.msgpack.decode(raw, type=m.Offer)


def test_routing_by_zone_and_wildcard():
    displays = [Display(id="a", zones=["z1", "z2"]), Display(id="b", zones=["z2"]), Display(id="all", zones=["*"])]
    assert pl.route("z2", displays) == ("a", "b", "all")
    assert pl.route("z1", displays) == ("a", "all")
    assert pl.route("z9", displays[:2]) == ()

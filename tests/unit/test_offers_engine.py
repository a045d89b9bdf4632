"""The pure offer engine, rule by rule: each test changes one input and expects one reason."""
from __future__ import annotations

from datetime import datetime, timezone

import msgspec
import numpy as np
import pytest

from endcap.core import messages as m
from endcap.core.config import convert_sections
from endcap.core.errors import ConfigError
from endcap.offers.config import OffersConfig
from endcap.offers.engine import Engine, Item, LocalTime, ScreenState, StockFact, TripState, holdout_arm, record, unit_hash
from endcap.offers.model import Calibration, OfferModel, Profile

NOW = 1_700_000_000.0
NOON_WED = LocalTime(2, 12 * 60)
IDENTITY = Calibration((0.0, 1.0), (0.0, 1.0))


def tiny_model(prior: dict[str, float]) -> OfferModel:
    skus = tuple(sorted(prior))
    n = len(skus)
    return OfferModel("t", "blend", "1", "d" * 64, skus, {s: i for i, s in enumerate(skus)}, np.array([prior[s] for s in skus]),
                      np.zeros(n + 1, np.int64), np.zeros(0, np.int64), np.zeros(0), {"history": IDENTITY, "anonymous": IDENTITY},
                      60.0, 2.0, 0.0, 200)


def config(**over) -> OffersConfig:
    base = {"model_path": "/m", "holdout_fraction": 0.0, "relevance_threshold": 0.1,
            "zones": {"dairy": {"skus": ["A", "B", "C"]}},
            "catalogue": [{"sku": "A", "title": "{name} now", "discount_pct": 10}, {"category": "DAIRY"}]}
    base.update(over)
    return msgspec.convert(base, OffersConfig, strict=True)


ITEMS = [Item("A", "Milk", "DAIRY", 2.0), Item("B", "Butter", "DAIRY", 3.0), Item("C", "Cheese", "DAIRY", 5.0)]
MODEL = tiny_model({"A": 0.30, "B": 0.20, "C": 0.15})


def stock(**qty) -> dict[str, StockFact]:
    levels = {"A": 10.0, "B": 10.0, "C": 10.0}
    levels.update(qty)
    return {s: StockFact(q, NOW - 1) for s, q in levels.items()}


def event(**over) -> m.ZoneEvent:
    base = dict(camera="cam", zone="dairy", track_id=7, kind="dwell", dwell_s=5.0, focus=0.9, confidence=0.95, ts=NOW,
                shopper_id=None)
    base.update(over)
    return m.ZoneEvent(**base)


def decide(cfg=None, ev=None, *, trip=None, screen=None, items=ITEMS, st=None, model=MODEL, profile=None, now=NOW, local=NOON_WED):
    eng = Engine(cfg or config())
    return eng.decide(ev or event(), now=now, local=local, trip=trip or TripState("k", now, now), screen=screen or ScreenState(),
                      candidates=items, stock=stock() if st is None else st, model=model, profile=profile)


def test_offers_the_most_relevant_in_stock_candidate_with_its_catalogue_entry():
    d = decide()
    assert d.reason == "offered" and d.arm == "treated" and d.sku == "A"
    assert d.offer.title == "Milk now" and d.offer.discount_pct == 10 and d.offer.price == 1.8
    assert d.offer.relevance == pytest.approx(0.30) and d.offer.zone == "dairy" and d.offer.issued_at == NOW


@pytest.mark.parametrize("over,reason", [
    ({"kind": "enter"}, "not_dwell"), ({"kind": "exit"}, "not_dwell"),
    ({"confidence": 0.8499}, "low_confidence"), ({"dwell_s": 1.0}, "short_dwell"), ({"zone": "nowhere"}, "unknown_zone"),
])
def test_event_gates(over, reason):
    assert decide(ev=event(**over)).reason == reason


def test_confidence_gate_is_inclusive_at_085_and_configurable():
    assert decide(ev=event(confidence=0.85)).reason == "offered"
    assert decide(config(confidence_gate=0.95), event(confidence=0.94)).reason == "low_confidence"


def test_focus_minimum():
    assert decide(config(min_focus=0.5), event(focus=0.4)).reason == "low_focus"


def test_out_of_stock_unknown_and_stale_stock_fail_closed():
    assert decide(st=stock(A=0.0)).sku == "B"  # the best is out of stock: the next best
    assert decide(st=stock(A=None)).sku == "B"  # pos does not know: never offered
    stale = stock()
    stale["A"] = StockFact(10.0, NOW - 121)  # older than stock_max_age_s (120)
    assert decide(st=stale).sku == "B"
    missing = stock()
    del missing["A"]  # never heard of
    assert decide(st=missing).sku == "B"
    d = decide(st=stock(A=0.0, B=None, C=0.5))  # C below min_stock 1
    assert d.reason == "no_stock" and d.offer is None and d.excluded["no_stock"] == 3


def test_unknown_skus_are_never_offered():
    d = decide(items=[Item("X", "Mystery", "DAIRY", 1.0)], st={"X": StockFact(5.0, NOW)})
    assert d.reason == "unknown_sku" and d.offer is None


def test_relevance_threshold():
    d = decide(config(relevance_threshold=0.31))
    assert d.reason == "below_threshold" and d.sku == "A" and d.offer is None


def test_no_model_no_offer():
    assert decide(model=None).reason == "no_model"


def test_catalogue_validity_window():
    def at(valid_from, valid_until):
        cfg = config(catalogue=[{"sku": "A", "valid_from": valid_from, "valid_until": valid_until}])
        return decide(cfg, items=ITEMS[:1])
    t = datetime.fromtimestamp(NOW, timezone.utc)
    assert at(t, None).reason == "offered"  # valid_from inclusive
    assert at(None, t).reason == "no_active_offer"  # valid_until exclusive
    assert at(t.replace(year=t.year + 1), None).reason == "no_active_offer"


def test_dayparts_for_zone_and_entry_including_one_past_midnight():
    dps = [{"name": "late", "start": "22:00", "end": "02:00", "days": ["fri"]}, {"name": "lunch", "start": "11:30", "end": "13:30"}]
    cfg = config(dayparts=dps, zones={"dairy": {"skus": ["A"], "dayparts": ["late"]}})
    assert decide(cfg, local=LocalTime(4, 23 * 60)).reason == "offered"  # Friday 23:00
    assert decide(cfg, local=LocalTime(5, 60)).reason == "offered"  # Saturday 01:00 belongs to Friday's daypart
    assert decide(cfg, local=LocalTime(5, 23 * 60)).reason == "outside_daypart"  # Saturday 23:00
    assert decide(cfg, local=NOON_WED).reason == "outside_daypart"
    cfg = config(dayparts=dps, catalogue=[{"sku": "A", "dayparts": ["lunch"]}])
    assert decide(cfg, local=NOON_WED).reason == "offered"
    assert decide(cfg, local=LocalTime(2, 14 * 60)).reason == "no_active_offer"


def test_trip_cap_shopper_gap_screen_gap_and_sku_cooldown():
    cfg = config(max_offers_per_trip=2, shopper_gap_s=60, screen_gap_s=15, sku_cooldown_s=600)
    eng = Engine(cfg)
    trip, screen = TripState("k", NOW, NOW), ScreenState()

    def go(t, scr=screen, tr=trip, zone="dairy"):
        ev = event(ts=t, zone=zone)
        d = eng.decide(ev, now=t, local=NOON_WED, trip=tr, screen=scr, candidates=ITEMS, stock=stock(), model=MODEL, profile=None)
        record(d, ev, t, tr, scr)
        return d

    assert go(NOW).sku == "A"
    assert go(NOW + 30).reason == "shopper_gap"
    other_trip = TripState("k2", NOW, NOW)
    assert go(NOW + 10, tr=other_trip).reason == "screen_busy"
    d = go(NOW + 20, tr=other_trip)
    assert d.reason == "offered" and d.sku == "B"  # A is cooling down on this screen
    d = go(NOW + 90)
    assert d.reason == "offered" and d.sku == "C"  # never the same SKU twice in a trip; B cools down on the screen
    assert go(NOW + 200).reason == "trip_cap"
    assert trip.zones == ["dairy"] and trip.offers == 2


def test_holdout_is_fixed_per_shopper_and_records_the_would_be_sku():
    cfg = config(holdout_fraction=0.5)
    arms = {holdout_arm(cfg, event(shopper_id=str(i))) for i in range(50)}
    assert arms == {"holdout", "treated"}
    held = next(str(i) for i in range(50) if holdout_arm(cfg, event(shopper_id=str(i))) == "holdout")
    d = decide(cfg, event(shopper_id=held))
    assert d.reason == "holdout" and d.arm == "holdout" and d.sku == "A" and d.offer is None and d.eligible
    assert all(holdout_arm(cfg, event(shopper_id=held, track_id=t)) == "holdout" for t in range(5))  # the shopper, not the track
    share = sum(unit_hash("s", str(i)) < 0.1 for i in range(20000)) / 20000
    assert 0.09 < share < 0.11


def test_holdout_counts_against_the_trip_but_not_the_screen():
    cfg = config(holdout_fraction=0.999999)
    trip, screen = TripState("k", NOW, NOW), ScreenState()
    ev = event(shopper_id="s1")
    d = Engine(cfg).decide(ev, now=NOW, local=NOON_WED, trip=trip, screen=screen, candidates=ITEMS, stock=stock(), model=MODEL, profile=None)
    record(d, ev, NOW, trip, screen)
    assert d.reason == "holdout" and trip.offers == 1 and "A" in trip.skus and screen.last_offer_at is None


def test_known_shopper_profile_changes_the_choice():
    prof = Profile.of(5.0, {2: 5.0}, {}, 5)  # always buys C
    d = decide(profile=prof)
    assert d.sku == "C" and d.relevance == pytest.approx((5 + 2 * 0.15) / 7)


def test_ties_break_by_sku_deterministically():
    d = decide(model=tiny_model({"A": 0.2, "B": 0.2, "C": 0.2}))
    assert d.sku == "A"


def test_config_rejects_discounts_above_the_limit_and_unknown_dayparts():
    with pytest.raises(ConfigError) as e:
        convert_sections({"offers": {"model_path": "/m", "catalogue": [{"sku": "A", "discount_pct": 50}]}},
                         msgspec.defstruct("G", [("offers", OffersConfig)], forbid_unknown_fields=True))
    assert "max_discount_pct" in " ".join(e.value.problems)
    for bad in ({"zones": {"z": {"skus": ["A"], "dayparts": ["nope"]}}},
                {"catalogue": [{"sku": "A", "category": "B"}]},
                {"catalogue": [{"sku": "A", "image": "http://evil/x.png"}]},
                {"dayparts": [{"name": "x", "start": "25:00", "end": "01:00"}]},
                {"zones": {"z": {}}}, {"holdout_fraction": 1.0}, {"confidence_gate": 1.5}, {"surprise": 1}):
        with pytest.raises(msgspec.ValidationError):
            msgspec.convert({"model_path": "/m", **bad}, OffersConfig, strict=True)

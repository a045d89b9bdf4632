"""The offers service as a real process, with a real pos service over a simulated store's POS database
and a real model package: offers for in-stock SKUs only, fail closed on stale stock, model hot-swap
with refusal of a tampered package, and bad input (unknown zone, empty history, low confidence)."""
from __future__ import annotations

import os
import time

import pytest

from endcap.core.bus import Publisher, Subscriber
from endcap.core.errors import BusTimeout
from endcap.sim import writer
from endcap.sim.shoppers import prepare_history
from endcap.sim.sourcedb import open_source
from tests.fixtures import offers as fx
from endcap.launcher import wait_health


@pytest.fixture
def store(tmp_path):
    """A POS database with store 367's history (weeks 1-44), the simulator, and three zone SKUs."""
    hist, _ = fx.store_split()
    url = f"sqlite:///{tmp_path}/ospos.db"
    src = open_source(url)
    sim = prepare_history(src, hist)
    f, _ = fx.trained()
    sold = {ln.item_id for b in hist.baskets for ln in b.lines}
    skus = [s for s in f.skus.tolist() if int(s) in sold][:3]  # most-known SKUs the store sells
    at = sim.source_now_us + 1_000_000
    writer.update_counts(src, [(int(s), 50) for s in skus], at)  # a fresh count: all three in stock
    src.commit()
    return url, src, sim, skus, at


def _config(url: str, model: str, skus: list[str], extra: str = "") -> str:
    cat = "".join(f'[[offers.catalogue]]\nsku = "{s}"\ntitle = "{{name}} today"\ndiscount_pct = 10\n' for s in skus)
    return (fx.pos_section(url) + f'[offers]\nmodel_path = "{model}"\nrelevance_threshold = 0.0\nholdout_fraction = 0.0\n'
            f'shopper_gap_s = 0\nscreen_gap_s = 0\nsku_cooldown_s = 0\nmax_offers_per_trip = 1000\nhealth_interval_s = 0.3\n'
            f'stock_refresh_s = 0.5\nstock_max_age_s = 3\nmodel_poll_s = 0.2\n{extra}'
            f'[offers.zones.z1]\nskus = {skus!r}\n'.replace("'", '"') + cat)


@pytest.fixture
def running(gateway, store, tmp_path):
    url, src, sim, skus, at = store
    active = tmp_path / "active"
    fx.write_model(tmp_path / "v1", "v1")
    os.symlink(tmp_path / "v1", active)
    gateway.write_config(_config(url, str(active), skus))
    gateway.start("pos")
    gateway.start("offers")
    wait_health(gateway.paths, "offers", lambda h: h.ok and h.counters.get("stock_known", 0) >= 3, 30)
    pub = Publisher(gateway.paths.pub_address("vision"), "test-vision")
    yield gateway, pub, src, sim, skus, at, tmp_path
    pub.close()


def test_offer_for_an_in_stock_sku_is_published_with_catalogue_text(running):
    gateway, pub, src, sim, skus, at, _ = running
    with Subscriber([gateway.paths.pub_address("offers")], ["offers.offer"], "test", recv_timeout_ms=500) as sub:
        row = fx.publish_until_decided(pub, fx.offers_db(gateway.paths), fx.dwell(1))
        assert row[0] == "offered" and row[2] in skus and row[6] == "v1"
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                offer = sub.recv().body
            except BusTimeout:
                continue
            if offer.offer_id == row[5]:
                break
        else:
            raise AssertionError("the recorded offer never reached the bus")
    assert offer.zone == "z1" and offer.title.endswith(" today") and offer.discount_pct == 10 and 0 <= offer.relevance <= 1


def test_never_offers_out_of_stock_or_never_counted_skus(running):
    gateway, pub, src, sim, skus, at, _ = running
    db = fx.offers_db(gateway.paths)
    # the two best go out of stock at the POS: from the moment offers hears it, only the third may be offered
    writer.update_counts(src, [(int(skus[0]), 0), (int(skus[1]), 0)], at + 1_000_000)
    src.commit()
    track, seen = 100, []
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        track += 1
        row = fx.publish_until_decided(pub, db, fx.dwell(track))
        seen.append(row[2])
        if row[2] == skus[2]:
            break
    assert seen[-1] == skus[2]
    for t in range(track + 1, track + 6):  # and it stays so
        row = fx.publish_until_decided(pub, db, fx.dwell(t))
        assert row[0] == "offered" and row[2] == skus[2]
    writer.update_counts(src, [(int(skus[2]), 0)], at + 2_000_000)
    src.commit()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        track += 10
        row = fx.publish_until_decided(pub, db, fx.dwell(track))
        if row[0] == "no_stock":
            break
    assert row[0] == "no_stock" and row[5] is None


def test_stale_stock_fails_closed_when_pos_goes_away(running):
    gateway, pub, src, sim, skus, at, _ = running
    db = fx.offers_db(gateway.paths)
    assert fx.publish_until_decided(pub, db, fx.dwell(200))[0] == "offered"
    gateway.procs["pos"].stop()
    track, row = 200, None
    deadline = time.monotonic() + 20  # stock_max_age_s is 3 s: levels age out, nothing refreshes them
    while time.monotonic() < deadline:
        track += 1
        row = fx.publish_until_decided(pub, db, fx.dwell(track))
        if row[0] == "no_stock":
            break
    assert row[0] == "no_stock"
    wait_health(gateway.paths, "offers", lambda h: not h.ok and h.last_error is not None, 20)


def test_tampered_package_is_refused_and_the_previous_model_keeps_serving(running):
    gateway, pub, src, sim, skus, at, tmp = running
    db = fx.offers_db(gateway.paths)
    bad = fx.write_model(tmp / "v2", "v2")
    data = bytearray((bad / "prior.npy").read_bytes())
    data[-1] ^= 0x01
    (bad / "prior.npy").write_bytes(bytes(data))
    os.symlink(bad, tmp / "next")
    os.replace(tmp / "next", tmp / "active")  # an atomic switch, as an installer would do it
    wait_health(gateway.paths, "offers", lambda h: h.counters.get("model_refused", 0) >= 1, 20)
    row = fx.publish_until_decided(pub, db, fx.dwell(300))
    assert row[0] == "offered" and row[6] == "v1"
    assert "SHA-256" in gateway.log("offers") and "keeping the previous model" in gateway.log("offers")
    fx.write_model(tmp / "v3", "v3")
    os.symlink(tmp / "v3", tmp / "next")
    os.replace(tmp / "next", tmp / "active")
    wait_health(gateway.paths, "offers", lambda h: h.counters.get("model_loads", 0) >= 2, 20)
    row = fx.publish_until_decided(pub, db, fx.dwell(301))
    assert row[0] == "offered" and row[6] == "v3"


def test_bad_input_unknown_zone_low_confidence_and_an_empty_history(running):
    gateway, pub, src, sim, skus, at, _ = running
    db = fx.offers_db(gateway.paths)
    assert fx.publish_until_decided(pub, db, fx.dwell(400, zone="nowhere"))[0] == "unknown_zone"
    assert fx.publish_until_decided(pub, db, fx.dwell(401, confidence=0.5))[0] == "low_confidence"
    row = fx.publish_until_decided(pub, db, fx.dwell(402, shopper_id="never-shopped-here"))
    assert row[0] == "offered"  # decided without a history: as an anonymous shopper
    deadline = time.monotonic() + 10
    while "empty history" not in row[4] and time.monotonic() < deadline:
        row = fx.publish_until_decided(pub, db, fx.dwell(403 + int(time.monotonic() * 1000) % 1000, shopper_id="never-shopped-here"))
    assert row[4] == "anonymous(empty history)"
    known = str(next(b.customer_id for b in sim.data.baskets[-50:]))
    deadline = time.monotonic() + 10
    track = 2000
    while time.monotonic() < deadline:
        track += 1
        row = fx.publish_until_decided(pub, db, fx.dwell(track, shopper_id=known))
        if row[4] == "history":
            break
    assert row[4] == "history" and row[0] == "offered"


def test_offers_started_before_pos_read_the_catalogue_gets_its_zone_candidates_once_it_has(gateway, store, tmp_path):
    """A category zone on a fresh gateway whose POS is not reachable yet: offers must not settle on an empty
    candidate list (pos has read no catalogue yet), and offers as soon as pos has read it."""
    url, src, sim, skus, at = store
    category = next(i.category for i in sim.data.items if str(i.item_id) == skus[0])
    fx.write_model(tmp_path / "v1", "v1")
    db = tmp_path / "ospos.db"
    away = [(p, p.with_name(p.name + ".away")) for p in (db.with_name(db.name + s) for s in ("", "-wal", "-shm")) if p.exists()]
    for here, there in away:
        here.rename(there)
    gateway.write_config(fx.pos_section(url) + f'[offers]\nmodel_path = "{tmp_path / "v1"}"\nrelevance_threshold = 0.0\n'
                         f'holdout_fraction = 0.0\nhealth_interval_s = 0.3\n[offers.zones.z1]\ncategories = ["{category}"]\n'
                         f'[[offers.catalogue]]\ncategory = "{category}"\ntitle = "{{name}}"\n')
    gateway.start("pos")
    gateway.start("offers")
    waiting = wait_health(gateway.paths, "offers", lambda h: h.last_error is not None and h.last_error.code == "not_ready", 30)
    assert not waiting.ok and "not read the POS catalogue yet" in waiting.last_error.message
    pub = Publisher(gateway.paths.pub_address("vision"), "test-vision")
    try:
        assert fx.publish_until_decided(pub, fx.offers_db(gateway.paths), fx.dwell(1))[0] == "unknown_sku"  # nothing offered blind
        for here, there in away:  # the POS comes up
            there.rename(here)
        wait_health(gateway.paths, "offers", lambda h: h.ok and h.counters.get("zones_without_candidates") == 0
                    and h.counters.get("zone_stock_known", 0) > 0, 30)
        row = fx.publish_until_decided(pub, fx.offers_db(gateway.paths), fx.dwell(2))
        assert row[0] == "offered" and next(i.category for i in sim.data.items if str(i.item_id) == row[2]) == category
    finally:
        pub.close()

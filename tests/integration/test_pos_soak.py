"""Soak: ≥ 20,000 real basket lines with every simulator fault on, the pos service SIGKILLed ≥ 10 times
at random while it reads. Afterwards the edge's transactions equal the source's exactly (no loss, no
double count), control totals match for every business day, and stock levels equal the source's.

Once against SQLite, once against a real PostgreSQL started by the ``postgres_url`` fixture.
"""
from __future__ import annotations

import random
import threading
import time

import pytest

from endcap.core.bus import RpcClient
from endcap.core import messages as m
from endcap.pos.store import EdgeStore
from endcap.sim import truth
from endcap.sim.dataset import load_store
from endcap.sim.faults import ALL_FAULTS
from endcap.sim.replay import Simulator
from endcap.sim.sourcedb import open_source

LINES = 20_500
KILLS = 10
REPLAY_WALL_S = 30.0  # the replay is paced to last about this long, so the kills land inside it


@pytest.fixture(params=["sqlite", "postgresql"])
def source_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/ospos.db"
    return request.getfixturevalue("postgres_url")


@pytest.mark.soak
def test_no_transaction_lost_or_double_counted_under_faults_and_kills(source_url, gateway):
    data = load_store(367, max_lines=LINES)
    assert data.line_count >= 20_000
    span_s = (data.baskets[-1].business_us - data.baskets[0].business_us) / 1e6
    sim = Simulator(open_source(source_url), data, speed=span_s / REPLAY_WALL_S, faults=ALL_FAULTS, seed=11)
    sim.prepare()
    gateway.write_config(
        '[pos]\nstore_id = "store-367"\npoll_interval_s = 0.5\nreconcile_grace_s = 600\n'
        # the simulated store's counts are days apart in source time; the feed is what we test here
        "stock_count_max_age_s = 1e9\n"
        f'[pos.sql]\nurl = "{source_url}"\n')
    pos = gateway.start("pos")

    replay = threading.Thread(target=sim.run, name="replay")
    replay.start()
    rng, pause = random.Random(7), threading.Event()
    kills = 0
    while kills < KILLS:
        pause.wait(rng.uniform(0.5, 2.0))
        pos.kill()
        kills += 1
        pos = gateway.start("pos")
    assert replay.is_alive(), "the replay ended before all kills landed: slow it down"
    replay.join()
    assert kills >= 10

    source = open_source(source_url)
    expected = truth.source_transactions(source)
    edge = EdgeStore(gateway.paths.service_state("pos") / "pos.db", readonly=True)
    deadline = time.monotonic() + 60
    while edge.current_txns() != expected and time.monotonic() < deadline:
        pause.wait(0.2)  # the service catches up after the last kill
    got = edge.current_txns()
    missing = set(expected) - set(got)
    extra = set(got) - set(expected)
    differ = [k for k in expected.keys() & got.keys() if expected[k] != got[k]]
    assert not missing and not extra and not differ, (len(missing), len(extra), differ[:3])

    # every fault really happened, in numbers that matter
    happened = sim.progress().faults
    for fault in ALL_FAULTS:
        assert happened.get(fault, 0) >= 1, (fault, happened)
    # versions: flips and cancels made new versions; duplicates made none
    counts = edge.counts()
    assert counts["txn_versions"] > counts["txns"]
    assert counts["quarantined"] == 0

    days = edge.business_days()
    assert len(days) > 100
    for day in days:
        assert edge.day_totals(day) == truth.source_day_totals(source, day), day

    # stock, through the service's own RPC, equals the source's count + later movements
    want = truth.source_stock(source)
    skus = sorted(want)
    with RpcClient(gateway.paths.rpc_address("pos"), "test", timeout_ms=5000) as rpc:
        levels = {}
        for i in range(0, len(skus), 500):
            levels.update({lv.sku: lv.qty for lv in rpc.call("stock", m.StockQuery(skus[i:i + 500]), m.StockReply).levels})
    wrong = {s: (levels.get(s), want[s]) for s in skus if levels.get(s) != pytest.approx(want[s])}
    assert not wrong, list(wrong.items())[:5]
    # the service's own daily reconciliation agreed on every day it closed
    assert edge.counts()["reconcile_mismatch_days"] == 0
    source.close()
    edge.close()

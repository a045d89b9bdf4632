"""The store simulator against a real PostgreSQL (``postgres_url`` fixture): the same replay as on
SQLite, and the source tells the same truth on both."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest

from endcap.sim import truth
from endcap.sim.dataset import load_store
from endcap.sim.faults import ALL_FAULTS
from endcap.sim.replay import Simulator
from endcap.sim.sourcedb import open_source


@pytest.fixture(scope="module")
def data():
    return load_store(367, max_lines=2000)


def replay(url, data):
    src = open_source(url)
    sim = Simulator(src, data, faults=ALL_FAULTS, seed=1, low_stock=45)
    sim.prepare()
    sim.run()
    return src, sim


def test_postgres_replay_matches_sqlite_and_the_true_stock(postgres_url, data, tmp_path):
    pg, pg_sim = replay(postgres_url, data)
    lite, _ = replay(f"sqlite:///{tmp_path / 'pos.db'}", data)
    try:
        assert pg.kind == "postgres"
        assert all(n > 0 for n in pg_sim.fault_counts.values()) and set(pg_sim.fault_counts) == set(ALL_FAULTS)
        assert truth.source_stock(pg) == pg_sim.expected_stock() == truth.source_stock(lite)
        assert truth.source_transactions(pg) == truth.source_transactions(lite)
        first = datetime.fromtimestamp(data.baskets[0].business_us / 1e6, timezone.utc).date()
        last = datetime.fromtimestamp(data.baskets[-1].business_us / 1e6, timezone.utc).date()
        for day in {first.isoformat(), last.isoformat()}:
            assert truth.source_day_totals(pg, day) == truth.source_day_totals(lite, day)
        assert pg.has_column("ospos_sales_items", "loyalty_points")
        # timestamp(6) keeps the microseconds the SQLite text carries
        (pg_max,), = pg.query("SELECT MAX(updated_at) FROM ospos_sales")
        (lite_max,), = lite.query("SELECT MAX(updated_at) FROM ospos_sales")
        assert pg.from_db(pg_max) == lite.from_db(lite_max)
    finally:
        pg.close()
        lite.close()

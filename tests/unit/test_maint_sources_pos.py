"""pos/link.py: credentials never leave it, and the link state is computed from the poller's health."""
from __future__ import annotations

import socket

from endcap.core.errors import UpstreamRetryable
from endcap.core.health import HealthState
from endcap.pos import link
from endcap.pos.config import PosConfig, SqlSource


def test_safe_url_hides_passwords_in_urls_and_conninfo():
    assert link.safe_url("postgresql://pos:s3cr%40t@db.local:5433/ospos") == "postgresql://pos:***@db.local:5433/ospos"
    assert link.safe_url("host=db user=pos password='a b' dbname=x") == "host=db user=pos password=*** dbname=x"
    assert link.safe_url("sqlite:////var/lib/pos.db") == "sqlite:////var/lib/pos.db"


def _closed_port() -> int:
    with socket.socket() as s:  # bound then closed: nothing listens there
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_probe_of_an_unreachable_postgres_fails_in_plain_words_without_the_password():
    url = f"postgresql://pos:Sup3rSecret@127.0.0.1:{_closed_port()}/ospos"
    cfg = PosConfig(sql=SqlSource(url=url, connect_timeout_s=2.0))
    got = link.probe(cfg)
    assert not got.ok and got.detail.startswith("cannot connect to PostgreSQL"), got.detail
    assert "Sup3rSecret" not in got.detail and "pos:***@127.0.0.1" in got.detail
    assert 0 < got.latency_ms < 4000


def test_link_state_shows_only_a_current_error_and_redacts_it():
    url = "postgresql://pos:Sup3rSecret@db/ospos"
    cfg = PosConfig(sql=SqlSource(url=url))
    h = HealthState("pos", 10.0)
    h.success(100.0)
    h.failure(UpstreamRetryable(f"connect to {url} failed: password=Sup3rSecret", code="unreachable"), 101.0)
    st = link.link_state(cfg, h, 90_000_000, 3, 105.0)
    assert st.last_error.code == "unreachable" and "Sup3rSecret" not in st.last_error.message
    assert st.lag_s == 15.0 and st.quarantined == 3 and st.last_poll_ok_at == 100.0
    assert st.adapter == "sql: postgresql://pos:***@db/ospos"
    h.success(102.0)
    assert link.link_state(cfg, h, None, 0, 105.0).last_error is None
    assert link.link_state(cfg, h, None, 0, 105.0).lag_s is None


def test_probe_runner_bounds_the_wait_runs_one_probe_at_a_time_and_redacts_failures():
    import threading

    import pytest

    from endcap.core import messages as m
    from endcap.core.errors import EndcapError

    url = "postgresql://pos:Sup3rSecret@db/ospos"
    cfg = PosConfig(sql=SqlSource(url=url))
    entered, release = threading.Event(), threading.Event()
    calls: list[str] = []

    def slow(c: PosConfig) -> m.PosLinkTest:
        calls.append("slow")
        entered.set()
        release.wait(10)
        return m.PosLinkTest(ok=True, detail="late", latency_ms=1.0)

    runner = link.ProbeRunner(cfg, wait_s=0.2, run=slow)
    try:
        got = runner()
        assert not got.ok and got.detail == "the link test did not finish within 0.2 s (postgresql://pos:***@db/ospos)"
        assert 150 < got.latency_ms < 2000 and entered.is_set()
        with pytest.raises(EndcapError) as e:  # the first probe still runs: no second thread
            runner()
        assert e.value.code == "busy" and "still running" in str(e.value)
        assert calls == ["slow"]
    finally:
        release.set()
    done = threading.Event()
    runner2 = link.ProbeRunner(cfg, wait_s=5.0, run=lambda c: (done.set(), m.PosLinkTest(ok=True, detail="quick", latency_ms=1.0))[1])
    assert runner2().detail == "quick" and done.is_set()

    def broken(c: PosConfig) -> m.PosLinkTest:
        raise RuntimeError(f"driver exploded on {url}")

    with pytest.raises(EndcapError) as e:
        link.ProbeRunner(cfg, wait_s=5.0, run=broken)()
    assert e.value.code == "probe" and "RuntimeError: driver exploded" in str(e.value) and "Sup3rSecret" not in str(e.value)

"""Source time formats and URL redaction (endcap.sim.sourcedb): the pure helpers."""
from __future__ import annotations

from datetime import datetime

import pytest

from endcap.sim.sourcedb import datetime_to_us, redact, text_to_us, us_to_datetime, us_to_text


def test_sqlite_time_text_always_has_six_fraction_digits_and_round_trips():
    us = 1483295086 * 10**6  # 2017-01-01 18:24:46 UTC
    assert us_to_text(us) == "2017-01-01 18:24:46.000000"
    assert us_to_text(us + 7) == "2017-01-01 18:24:46.000007"
    for v in (0, us, us + 1, us + 999_999, 4102444800 * 10**6 - 1):
        assert text_to_us(us_to_text(v)) == v
        assert datetime_to_us(us_to_datetime(v)) == v
    assert us_to_datetime(us) == datetime(2017, 1, 1, 18, 24, 46)


def test_text_order_is_time_order():
    values = [0, 1, 999_999, 1_000_000, 59 * 10**6, 10**15]
    assert sorted(us_to_text(v) for v in values) == [us_to_text(v) for v in values]


def test_malformed_time_text_is_refused():
    with pytest.raises(ValueError):
        text_to_us("2017-01-01 18:24:46")  # no fraction: not what the POS writes
    with pytest.raises(ValueError):
        text_to_us("2017-01-01T18:24:46.000000")


def test_passwords_never_reach_messages():
    assert redact("postgresql://pos:s3cret@db:5432/ospos") == "postgresql://pos:***@db:5432/ospos"
    assert "s3cret" not in redact("host=db user=pos password=s3cret dbname=ospos")
    assert redact("sqlite:////var/lib/pos.db") == "sqlite:////var/lib/pos.db"

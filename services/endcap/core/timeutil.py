"""Exact time conversions. Source change times are integer microseconds since the epoch (UTC):
floats cannot hold microseconds at today's epoch, and cursors must compare exactly."""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_US = timedelta(microseconds=1)
SQL_TEXT_FORMAT = "%Y-%m-%d %H:%M:%S.%f"


def us_from_datetime(dt: datetime) -> int:
    """Naive datetimes are taken as UTC (that is how the POS schema stores them)."""
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return (dt - EPOCH) // _US


def datetime_from_us(us: int) -> datetime:
    """A naive UTC datetime, as the POS schema stores it."""
    return (EPOCH + us * _US).replace(tzinfo=None)


def us_from_text(text: str) -> int:
    """Parse ISO 8601 / RFC 3339 text ('2017-01-01 11:53:26.5', '2017-01-01T11:53:26Z', offsets).

    Raises:
        ValueError: not a timestamp.
    """
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    return us_from_datetime(datetime.fromisoformat(text))


def text_from_us(us: int) -> str:
    """The SQLite POS schema's text form: always six fractional digits, so text order is time order."""
    return datetime_from_us(us).strftime(SQL_TEXT_FORMAT)


def seconds_from_us(us: int) -> float:
    return us / 1e6


def day_of_us(us: int) -> str:
    return datetime_from_us(us).date().isoformat()


def day_bounds_us(day: str) -> tuple[int, int]:
    """[start, end) of a UTC day in microseconds.

    Raises:
        ValueError: ``day`` is not an ISO date.
    """
    d = date.fromisoformat(day)
    start = us_from_datetime(datetime(d.year, d.month, d.day))
    return start, start + 86_400_000_000

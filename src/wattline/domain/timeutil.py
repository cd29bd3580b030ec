"""Time helpers: epoch seconds <-> aware datetimes, local calendar buckets."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

UTC = timezone.utc


class TimezoneError(ValueError):
    pass


@lru_cache(maxsize=512)
def zone(name: str) -> ZoneInfo:
    """The IANA zone ``name``; raises :class:`TimezoneError` for an unknown one."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise TimezoneError(f"unknown IANA timezone {name!r}") from exc


def to_epoch(dt: datetime) -> int:
    """UTC epoch seconds (int, truncated) of an aware datetime; ValueError if naive."""
    if dt.tzinfo is None:
        raise ValueError("naive datetime: give a timezone offset")
    return int(dt.timestamp())


def from_epoch(ts: int) -> datetime:
    """Aware UTC datetime of UTC epoch seconds ``ts``."""
    return datetime.fromtimestamp(int(ts), UTC)


def iso(ts: int, tz: str | None = None) -> str:
    """ISO-8601 text of epoch seconds, in ``tz`` if given (else UTC, with ``Z``)."""
    if tz is None:
        return from_epoch(ts).strftime("%Y-%m-%dT%H:%M:%SZ")
    return datetime.fromtimestamp(int(ts), zone(tz)).isoformat()


def parse_instant(text: str) -> int:
    """Epoch seconds from ISO-8601 with an offset (or ``Z``), or from plain epoch seconds.

    Raises ``ValueError`` for anything else, including an ISO time without an offset.
    """
    s = text.strip()
    try:
        number = float(s)
    except ValueError:
        return _parse_iso(s)
    if number != number or number in (float("inf"), float("-inf")):
        raise ValueError(f"timestamp {s!r} is not a finite number")
    return int(number)


def _parse_iso(s: str) -> int:
    dt = datetime.fromisoformat(s.replace("Z", "+00:00").replace("z", "+00:00"))
    if dt.tzinfo is None:
        raise ValueError(f"timestamp {s!r} has no UTC offset")
    return int(dt.timestamp())


@lru_cache(maxsize=65536)  # every bucket boundary is asked for over and over
def local_midnight(d: date, tz: str) -> int:
    """Epoch seconds of local midnight starting calendar day ``d`` in ``tz``.

    If midnight does not exist (a DST jump at 00:00) this is the first instant of the day.
    """
    z = zone(tz)
    naive = datetime(d.year, d.month, d.day)
    local = naive.replace(tzinfo=z)
    # a non-existent wall time round-trips to a different one; take the later side
    ts = int(local.timestamp())
    back = datetime.fromtimestamp(ts, z)
    if back.date() != d:
        ts = int(local.replace(fold=1).timestamp())
    return ts


def local_date(ts: int, tz: str) -> date:
    """Calendar date in zone ``tz`` (IANA name) at instant ``ts`` (UTC epoch seconds)."""
    return datetime.fromtimestamp(int(ts), zone(tz)).date()


def day_bounds(d: date, tz: str) -> tuple[int, int]:
    """Local day ``d`` in zone ``tz`` as [start, end), UTC epoch seconds.

    Parameters
    ----------
    d : datetime.date
        Calendar date.
    tz : str
        IANA zone name.

    Returns
    -------
    (int, int)
        :func:`local_midnight` of ``d`` and of the next day: 23, 24 or 25 hours apart
        on a DST change (23.5 / 24.5 in Australia/Lord_Howe).
    """
    return local_midnight(d, tz), local_midnight(d + timedelta(days=1), tz)


def month_bounds(year: int, month: int, tz: str) -> tuple[int, int]:
    """Local calendar month in zone ``tz`` as [start, end), UTC epoch seconds."""
    ny, nm = (year + 1, 1) if month == 12 else (year, month + 1)
    return local_midnight(date(year, month, 1), tz), local_midnight(date(ny, nm, 1), tz)


def year_bounds(year: int, tz: str) -> tuple[int, int]:
    """Local calendar year in zone ``tz`` as [start, end), UTC epoch seconds."""
    return local_midnight(date(year, 1, 1), tz), local_midnight(date(year + 1, 1, 1), tz)

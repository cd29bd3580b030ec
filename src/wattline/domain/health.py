"""Health of an asset's data from its age: green, yellow or red."""

from __future__ import annotations

GREEN, YELLOW, RED = "green", "yellow", "red"


def data_health(last_update_ts: int | None, expected_interval_s: int, now_ts: int) -> str:
    """Health colour of a series or asset from the age of its newest data.

    Parameters
    ----------
    last_update_ts : int or None
        Instant of the newest reading, UTC epoch seconds; None if there is none.
    expected_interval_s : int
        Interval the source is expected to report at, seconds.
    now_ts : int
        The current instant, UTC epoch seconds.

    Returns
    -------
    str
        ``"green"`` when the data is at most two expected intervals old, ``"yellow"``
        when at most four, ``"red"`` when older or when there is no data at all.
    """
    if last_update_ts is None:
        return RED
    age_s = now_ts - last_update_ts
    if age_s <= 2 * expected_interval_s:
        return GREEN
    if age_s <= 4 * expected_interval_s:
        return YELLOW
    return RED

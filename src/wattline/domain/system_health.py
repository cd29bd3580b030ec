"""The health dot of a monitored system (seed 003): the age of its last successful poll."""

from __future__ import annotations

GREEN, YELLOW, RED, UNKNOWN = "green", "yellow", "red", "unknown"
GREEN_BELOW_S = 5 * 60  # green while the last success is less than 5 minutes old
YELLOW_UPTO_S = 15 * 60  # yellow from 5 up to 15 minutes; red beyond
LABELS = {GREEN: "polled less than 5 minutes ago", YELLOW: "last poll 5 to 15 minutes ago",
          RED: "no successful poll for more than 15 minutes", UNKNOWN: "never polled successfully"}


def poll_health(last_success_s: float | None, now_s: float) -> str:
    """Health colour of a system from the time since its last successful poll.

    Parameters
    ----------
    last_success_s : float or None
        End of the last successful poll (or push), UTC epoch seconds; None if none yet.
    now_s : float
        The current instant, UTC epoch seconds (from :mod:`wattline.clock`).

    Returns
    -------
    str
        ``"green"`` when less than 5 minutes old, ``"yellow"`` from 5 to 15 minutes
        (both included), ``"red"`` beyond 15 minutes, ``"unknown"`` with no success yet.
        A success stamped in the future (clock skew) is green.
    """
    if last_success_s is None:
        return UNKNOWN
    age_s = now_s - last_success_s
    if age_s < GREEN_BELOW_S:
        return GREEN
    if age_s <= YELLOW_UPTO_S:
        return YELLOW
    return RED


def age_text(last_success_s: float | None, now_s: float) -> str:
    """How long ago, for a person: "45 s ago", "12 min ago", "3 h ago", "2 d ago", "never"."""
    if last_success_s is None:
        return "never"
    age = max(int(now_s - last_success_s), 0)
    if age < 60:
        return f"{age} s ago"
    if age < 3600:
        return f"{age // 60} min ago"
    if age < 86400:
        return f"{age // 3600} h ago"
    return f"{age // 86400} d ago"

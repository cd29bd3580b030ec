"""Quality flags carried by ledger entries and aggregate buckets (rule 7)."""

from __future__ import annotations

import enum


class Flag(enum.IntFlag):
    GAP = 1  # readings further apart than 1.5x the point's expected interval
    RESET = 2  # counter reset: energy after it counts from zero (the marker row)
    DIP = 4  # counter dipped within tolerance: noise, adds no energy
    WRAP = 8  # fixed-width counter wrapped around
    LOW_CONFIDENCE = 16  # energy integrated from power, not metered
    ESTIMATED = 32  # a delta spanning a bucket boundary was split by time
    NO_DATA = 64  # bucket without any reading or ledger entry
    SWITCHED_OFF = 128  # metered energy while the device's switch was off: kept as measured, for review


# an entry with any of these is not high-confidence: its energy counts as estimated
LOW_QUALITY = Flag.GAP | Flag.LOW_CONFIDENCE


class Method(enum.IntEnum):
    COUNTER = 1
    INTERVAL_ENERGY = 2
    POWER_INTEGRATION = 3


def flag_names(flags: int) -> list[str]:
    """Names of the quality flags set in a bit field.

    Parameters
    ----------
    flags : int
        ``Flag`` bits, as stored on ledger entries and buckets.

    Returns
    -------
    list of str
        Lower-case names of the set bits, in bit order: ``["gap", "estimated"]``.
    """
    return [f.name.lower() for f in Flag if flags & f]


# confidence (0..1) of an entry by how its energy was obtained
CONFIDENCE = {Method.COUNTER: 1.0, Method.INTERVAL_ENERGY: 1.0, Method.POWER_INTEGRATION: 0.6}
GAP_CONFIDENCE = 0.5  # cap for an entry that spans a gap
GAP_FACTOR = 1.5  # a step longer than this many expected intervals is a gap

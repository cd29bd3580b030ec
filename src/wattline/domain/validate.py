"""Validation: which readings may enter the ledger, and why the others may not.

Rejected readings are quarantined with their reason (rule 6): kept, counted,
never used.
"""

from __future__ import annotations

from typing import Mapping, Protocol

import numpy as np

from wattline.domain.readings import ReadingBatch


class PlausibleRange(Protocol):
    """What validation needs of a series: its plausible range, in the canonical unit
    of its metric type (kWh for counters, kW for power, % for soc...)."""

    plausible_min: float
    plausible_max: float


def quarantine_reasons(batch: ReadingBatch, configs: Mapping[int, PlausibleRange]) -> dict[int, str]:
    """The readings of ``batch`` that may not be used, with the reason.

    Parameters
    ----------
    batch : ReadingBatch
        Readings (series id, UTC epoch seconds, value in the canonical unit).
    configs : mapping of int to PlausibleRange
        Series id -> its plausible range (canonical unit); every series of ``batch``
        must be present.

    Returns
    -------
    dict of int to str
        Row index in ``batch`` -> reason (a non-finite value, or a value outside
        the plausible range), for the rejected rows only.
    """
    if len(batch) == 0:
        return {}
    ids = np.array(sorted(configs), np.int64)
    at = np.searchsorted(ids, batch.series_id)
    lo = np.array([configs[int(s)].plausible_min for s in ids])[at]
    hi = np.array([configs[int(s)].plausible_max for s in ids])[at]
    finite = np.isfinite(batch.value)
    with np.errstate(invalid="ignore"):
        out_of_range = finite & ((batch.value < lo) | (batch.value > hi))
    reasons = {}
    for i in np.flatnonzero(~finite | out_of_range).tolist():
        v = float(batch.value[i])
        reasons[i] = (f"non-finite value {v!r}" if not np.isfinite(v)
                      else f"value {v!r} outside plausible range [{float(lo[i])!r}, {float(hi[i])!r}]")
    return reasons

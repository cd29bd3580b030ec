"""Validation: which readings may enter the ledger, and why the others may not.

Rejected readings are quarantined with their reason (rule 6): kept, counted,
never used.
"""

from __future__ import annotations

import numpy as np

from wattline.domain.readings import ReadingBatch
from wattline.pipeline.series import SeriesConfig


def quarantine_reasons(batch: ReadingBatch, configs: dict[int, SeriesConfig]) -> dict[int, str]:
    """Row index -> the reason the reading may not be used, for the rejected rows only."""
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
                      else f"value {v!r} outside plausible range [{lo[i]!r}, {hi[i]!r}]")
    return reasons

"""Validation: which readings may enter the ledger, and why the others may not.

Rejected readings are quarantined with their reason (rule 6): kept, counted,
never used.
"""

from __future__ import annotations

import numpy as np

from wattline.domain.readings import ReadingBatch
from wattline.pipeline.series import SeriesConfig


def quarantine_reasons(batch: ReadingBatch, configs: dict[int, SeriesConfig]) -> list[str | None]:
    """Per reading: ``None`` if it may be used, else the reason it may not."""
    reasons: list[str | None] = [None] * len(batch)
    finite = np.isfinite(batch.value)
    lo = np.array([configs[int(s)].plausible_min for s in batch.series_id]) if len(batch) else np.zeros(0)
    hi = np.array([configs[int(s)].plausible_max for s in batch.series_id]) if len(batch) else np.zeros(0)
    with np.errstate(invalid="ignore"):
        out_of_range = finite & ((batch.value < lo) | (batch.value > hi))
    for i in np.flatnonzero(~finite | out_of_range):
        v = float(batch.value[i])
        if not np.isfinite(v):
            reasons[i] = f"non-finite value {v!r}"
        else:
            reasons[i] = f"value {v!r} outside plausible range [{lo[i]!r}, {hi[i]!r}]"
    return reasons

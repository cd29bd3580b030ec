"""Vendor records -> a :class:`ReadingBatch` for the pipeline (the vendor side of the
source contract): each value goes to the series the resolver names for its point, and
every reading links back to its record's untouched raw payload."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from wattline.domain.readings import ReadingBatch
from wattline.domain.sources import SeriesResolver

from .models import VendorRecord


def records_to_batch(resolver: SeriesResolver, asset_id: int, records: Sequence[VendorRecord],
                     source: str) -> ReadingBatch:
    """Readings of every point of ``asset_id`` that the records carry.

    A vendor field the asset has no point for is skipped. Values are already in
    the canonical unit (the adapter converted them); timestamps are UTC epoch s.
    """
    series: dict[str, int | None] = {}
    sid, ts, val, idx = [], [], [], []
    for i, rec in enumerate(records):
        for key, value in rec.values.items():
            if key not in series:  # one lookup per point, not per reading
                found = resolver.resolve(asset_id, key)
                series[key] = found.series_id if found is not None else None
            s = series[key]
            if s is None:
                continue
            sid.append(s)
            ts.append(rec.ts)
            val.append(value)
            idx.append(i)
    return ReadingBatch(np.array(sid, np.int64), np.array(ts, np.int64), np.array(val, np.float64),
                        np.array(idx, np.int64), [r.raw for r in records], source)

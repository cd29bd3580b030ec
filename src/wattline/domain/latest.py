"""Latest values: the newest reading of each series, and the interface that keeps them.

Two implementations live in ``store/``: the database (the newest stored reading,
always right, one index lookup per series) and Redis (one hash per asset, written by
the pipeline after each commit, read by the API), which falls back to the database
whenever Redis cannot answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Protocol

import numpy as np


@dataclass(frozen=True)
class LatestValue:
    """The newest reading of one series.

    Attributes
    ----------
    asset_id : int
        Asset the series belongs to (the Redis hash it lives in).
    series_id : int
        Series (point) id.
    ts : int
        Reading time, UTC epoch seconds.
    value : float
        Reading value, in the series' canonical unit.
    """

    asset_id: int
    series_id: int
    ts: int
    value: float


class LatestValueStore(Protocol):
    """Where the API reads current values and the pipeline records them."""

    def write(self, values: Iterable[LatestValue]) -> None:
        """Record ``values`` after their transaction committed. A value older than the
        one held for its series is ignored. Never raises: a failed write is logged and
        counted, the ingest it follows has already succeeded."""

    def read(self, asset_id: int, series_ids: list[int]) -> dict[int, LatestValue]:
        """Newest reading per series of ``asset_id`` (series without any are left out)."""


def newest_per_series(series_id: np.ndarray, ts: np.ndarray, value: np.ndarray,
                      asset_of: dict[int, int]) -> list[LatestValue]:
    """The newest reading of every series in a batch.

    Parameters
    ----------
    series_id, ts, value : numpy.ndarray
        Batch columns: series ids, UTC epoch seconds, values in canonical units.
        At equal (series, ts) the later row wins, like the pipeline's upsert.
    asset_of : dict
        Series id -> asset id.

    Returns
    -------
    list of LatestValue
        One per series, ordered by series id.
    """
    if len(series_id) == 0:
        return []
    ds, dt = np.diff(series_id), np.diff(ts)
    if ((ds > 0) | ((ds == 0) & (dt >= 0))).all():  # sources mostly send sorted batches
        sid, t, v = series_id, ts, value
    else:
        order = np.lexsort((np.arange(len(series_id)), ts, series_id))
        sid, t, v = series_id[order], ts[order], value[order]
    last = np.flatnonzero(np.r_[sid[1:] != sid[:-1], True])
    return [LatestValue(asset_of[int(s)], int(s), int(x), float(y))
            for s, x, y in zip(sid[last].tolist(), t[last].tolist(), v[last].tolist())]

"""The one shape every source hands to the pipeline.

A source (vendor adapter, MQTT device, HTTP post, CSV import, simulator) turns what
it received into a :class:`ReadingBatch`: columns of (series id, UTC epoch seconds,
value in the canonical unit) plus the untouched raw payloads the readings came from.
Columns rather than objects so that a million readings cost arrays, not a million
Python objects.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

import numpy as np


@dataclass(frozen=True)
class Reading:
    """One normalized reading, for sources that produce them one at a time."""

    series_id: int
    ts: int  # UTC, epoch seconds
    value: float  # canonical unit of the series' metric type
    raw_index: int = -1  # index into ReadingBatch.raw_payloads, -1 = no raw payload


@dataclass
class ReadingBatch:
    """Columns of normalized readings plus their raw payloads.

    ``raw_index[i]`` points into ``raw_payloads`` (``-1``: the reading has no raw
    payload, e.g. a simulator reading). Raw payloads are stored exactly as given
    (JSON-serialisable values), deduplicated by content hash.
    """

    series_id: np.ndarray  # int64
    ts: np.ndarray  # int64, UTC epoch seconds
    value: np.ndarray  # float64
    raw_index: np.ndarray  # int64
    raw_payloads: Sequence[Any] = field(default_factory=list)
    source: str = "unknown"

    def __post_init__(self) -> None:
        self.series_id = np.asarray(self.series_id, dtype=np.int64)
        self.ts = np.asarray(self.ts, dtype=np.int64)
        self.value = np.asarray(self.value, dtype=np.float64)
        self.raw_index = np.asarray(self.raw_index, dtype=np.int64)
        n = len(self.series_id)
        if not (len(self.ts) == len(self.value) == len(self.raw_index) == n):
            raise ValueError("ReadingBatch columns must have equal length")

    def __len__(self) -> int:
        return len(self.series_id)

    @classmethod
    def from_readings(
        cls, readings: Iterable[Reading], raw_payloads: Sequence[Any] = (), source: str = "unknown"
    ) -> "ReadingBatch":
        rows = list(readings)
        return cls(
            series_id=np.fromiter((r.series_id for r in rows), np.int64, len(rows)),
            ts=np.fromiter((r.ts for r in rows), np.int64, len(rows)),
            value=np.fromiter((r.value for r in rows), np.float64, len(rows)),
            raw_index=np.fromiter((r.raw_index for r in rows), np.int64, len(rows)),
            raw_payloads=list(raw_payloads),
            source=source,
        )

    @classmethod
    def empty(cls, source: str = "unknown") -> "ReadingBatch":
        z = np.zeros(0, np.int64)
        return cls(z, z, np.zeros(0), z, [], source)

    def take(self, mask_or_index: np.ndarray) -> "ReadingBatch":
        """A batch of the selected rows, sharing the same raw payload list."""
        return ReadingBatch(
            self.series_id[mask_or_index],
            self.ts[mask_or_index],
            self.value[mask_or_index],
            self.raw_index[mask_or_index],
            self.raw_payloads,
            self.source,
        )

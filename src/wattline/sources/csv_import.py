"""CSV files of meter data: ``asset,point,ts,value,unit[,type]`` -> readings.

A source like any other: it parses, it never writes. :func:`read_csv` checks each row
on its own (a bad row is reported with its line number and reason), converts values
to the canonical unit and keeps each row's original line as its raw payload. It
names the points the rows need (:meth:`CsvReadings.registrations`, typed from the
first row of each point, defaulting from the unit); the caller registers them
through :mod:`wattline.provisioning`, then :meth:`CsvReadings.batches` resolves the
rows with the read-only resolver and yields :class:`ReadingBatch` es for the pipeline.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Mapping

from wattline.domain import timeutil
from wattline.domain.metrics import MetricType, UnitError, default_metric_type, to_canonical_factor
from wattline.domain.readings import Reading, ReadingBatch
from wattline.domain.sources import PointDefinition, PointRegistration, SeriesResolver

REQUIRED = ("asset", "point", "ts", "value", "unit")
CHUNK_ROWS = 50_000
SOURCE = "csv"


@dataclass
class RowError:
    line: int
    reason: str


@dataclass
class ImportReport:
    rows: int = 0
    written: int = 0
    rejected: list[RowError] = field(default_factory=list)
    points_created: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.rejected


class CsvFormatError(ValueError):
    """The file as a whole is unusable (no header, missing columns)."""


@dataclass(frozen=True)
class CsvRow:
    line: int
    asset: str
    point: str
    metric_type: MetricType
    ts: int  # UTC epoch s
    value: float  # canonical unit of metric_type
    raw: str  # the line as it was in the file


@dataclass
class CsvReadings:
    """The good rows of a file, the rejected ones, and the points they name."""

    rows: list[CsvRow] = field(default_factory=list)
    rejected: list[RowError] = field(default_factory=list)
    rows_read: int = 0

    def registrations(self) -> list[PointRegistration]:
        """The points the rows name, each typed by its first row."""
        seen: dict[tuple[str, str], PointRegistration] = {}
        for r in self.rows:
            if (r.asset, r.point) not in seen:
                seen[(r.asset, r.point)] = PointRegistration(r.asset, PointDefinition(r.point, r.metric_type))
        return list(seen.values())

    def batches(self, resolver: SeriesResolver, asset_ids: Mapping[str, int],
                refused: Mapping[tuple[str, str], str] | None = None, *,
                chunk_rows: int = CHUNK_ROWS) -> Iterator[tuple[ReadingBatch, list[int]]]:
        """Batches of at most ``chunk_rows`` readings, each with the line of every reading.

        A row whose point is not registered (``refused`` says why, e.g. an unknown
        asset) or is registered with another metric type is added to
        :attr:`rejected` instead.
        """
        refused = refused or {}
        cache: dict[tuple[str, str], tuple[int, MetricType] | None] = {}
        pending: list[tuple[int, Reading]] = []
        payloads: list[str] = []
        for r in self.rows:
            key = (r.asset, r.point)
            if key not in cache:
                aid = asset_ids.get(r.asset)
                found = resolver.resolve(aid, r.point) if aid is not None else None
                cache[key] = (found.series_id, found.metric_type) if found is not None else None
            hit = cache[key]
            if hit is None:
                self.rejected.append(RowError(r.line, refused.get(key) or f"unknown asset {r.asset!r} "
                                              "(add it with 'wattline assets add')"))
                continue
            if hit[1] is not r.metric_type:
                self.rejected.append(RowError(
                    r.line, f"point {r.point!r} of {r.asset!r} is a {hit[1].value} series, not {r.metric_type.value}"))
                continue
            payloads.append(r.raw)
            pending.append((r.line, Reading(hit[0], r.ts, r.value, len(payloads) - 1)))
            if len(pending) >= chunk_rows:
                yield _batch(pending, payloads)
                pending, payloads = [], []
        if pending:
            yield _batch(pending, payloads)


def _batch(pending: list[tuple[int, Reading]], payloads: list[str]) -> tuple[ReadingBatch, list[int]]:
    return (ReadingBatch.from_readings((r for _, r in pending), payloads, source=SOURCE),
            [line for line, _ in pending])


def read_csv(path: Path) -> CsvReadings:
    """Parse a file; CsvFormatError if it has no usable header."""
    out = CsvReadings()
    with open(path, newline="", encoding="utf-8-sig") as fh:
        text = fh.read()
    lines = text.splitlines()
    reader = csv.reader(io.StringIO(text))
    try:
        header = [h.strip().lower() for h in next(reader)]
    except StopIteration:
        raise CsvFormatError(f"{path}: empty file, expected a header {','.join(REQUIRED)}[,type]")
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise CsvFormatError(f"{path}: header lacks column(s) {', '.join(missing)}")
    col = {name: header.index(name) for name in header}
    for row in reader:
        line_no = reader.line_num
        if not row or all(not c.strip() for c in row):
            continue
        out.rows_read += 1
        try:
            asset, point, mtype, ts, value = _parse_row(row, col)
        except (ValueError, UnitError) as exc:
            out.rejected.append(RowError(line_no, str(exc)))
            continue
        raw = lines[line_no - 1] if line_no - 1 < len(lines) else ",".join(row)
        out.rows.append(CsvRow(line_no, asset, point, mtype, ts, value, raw))
    return out


def _parse_row(row, col):
    if len(row) < len(REQUIRED):
        raise ValueError(f"expected at least {len(REQUIRED)} columns, got {len(row)}")
    get = lambda name: row[col[name]].strip() if col.get(name) is not None and col[name] < len(row) else ""  # noqa: E731
    asset, point, ts_text, value_text, unit = (get(c) for c in REQUIRED)
    type_text = get("type") if "type" in col else ""
    if not asset:
        raise ValueError("asset is empty")
    if not point:
        raise ValueError("point is empty")
    try:
        ts = timeutil.parse_instant(ts_text)
    except ValueError as exc:
        raise ValueError(f"bad timestamp {ts_text!r}: {exc}") from None
    try:
        value = float(value_text)
    except ValueError:
        raise ValueError(f"value {value_text!r} is not a number") from None
    if type_text:
        try:
            mtype = MetricType(type_text.lower())
        except ValueError:
            raise ValueError(f"unknown type {type_text!r}") from None
    else:
        mtype = default_metric_type(unit)
    factor = to_canonical_factor(unit, mtype)
    # non-finite and implausible values still go on: the pipeline quarantines them
    return asset, point, mtype, ts, value * factor if math.isfinite(value) else value

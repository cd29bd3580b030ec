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
    """Parse a file; CsvFormatError if it has no usable header.

    A row is rejected with its line number when it is not UTF-8, has more columns than
    the header, or names an asset or point with a control character (a
    quoted newline inside a key); the other rows go on.
    """
    out = CsvReadings()
    data = Path(path).read_bytes()
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    # undecodable bytes become lone surrogates, so the rows around them still parse and
    # the row holding one is rejected with its line number (not a traceback)
    text = data.decode("utf-8", errors="surrogateescape")
    lines = text.splitlines()
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = [h.strip().lower() for h in next(reader)]
    except StopIteration:
        raise CsvFormatError(f"{path}: empty file, expected a header {','.join(REQUIRED)}[,type]")
    except csv.Error as exc:
        raise CsvFormatError(f"{path}: unreadable header: {exc}") from None
    if any(_bad_bytes(h) for h in header):
        raise CsvFormatError(f"{path}: the header is not UTF-8")
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise CsvFormatError(f"{path}: header lacks column(s) {', '.join(missing)}")
    col = {name: header.index(name) for name in header}
    while True:
        first_line = reader.line_num + 1
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:  # e.g. a NUL byte, or a quote never closed
            out.rows_read += 1
            out.rejected.append(RowError(first_line, f"unreadable CSV: {exc}"))
            continue
        line_no = first_line
        if not row or all(not c.strip() for c in row):
            continue
        out.rows_read += 1
        try:
            if any(_bad_bytes(c) for c in row):
                raise ValueError("not UTF-8 text (an undecodable byte)")
            if len(row) > len(header):  # fewer is fine: a trailing optional column left out
                raise ValueError(f"expected at most {len(header)} columns, as the header has, got {len(row)}")
            asset, point, mtype, ts, value = _parse_row(row, col)
        except (ValueError, UnitError) as exc:
            out.rejected.append(RowError(line_no, str(exc)))
            continue
        raw = "\n".join(lines[line_no - 1:reader.line_num]) if line_no - 1 < len(lines) else ",".join(row)
        out.rows.append(CsvRow(line_no, asset, point, mtype, ts, value, raw))
    return out


def _bad_bytes(text: str) -> bool:
    """True if ``text`` holds a byte that was not UTF-8 (a surrogate from the decoding)."""
    return any("\udc80" <= ch <= "\udcff" for ch in text)


def _control_character(text: str) -> str | None:
    for ch in text:
        if ord(ch) < 32 or ord(ch) == 127:
            return {"\n": "a newline", "\r": "a carriage return", "\t": "a tab"}.get(ch, f"U+{ord(ch):04X}")
    return None


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
    for name, text in (("asset", asset), ("point", point)):
        bad = _control_character(text)
        if bad:
            raise ValueError(f"{name} {text!r} contains {bad}: names are one line of text")
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

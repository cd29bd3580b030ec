"""CSV import for people with meter data: ``asset,point,ts,value,unit[,type]``.

Each row is checked on its own; a bad row is reported with its line number and
reason and not written, the good rows go through the pipeline. Points that do not
exist yet are created with the row's type (defaulting from the unit). Each row's
original line is kept as its raw payload.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field
from pathlib import Path

from wattline.context import AppContext
from wattline.domain import timeutil
from wattline.domain.metrics import MetricType, UnitError, default_metric_type, to_canonical_factor
from wattline.domain.readings import Reading, ReadingBatch
from wattline.store import registry

REQUIRED = ("asset", "point", "ts", "value", "unit")
CHUNK_ROWS = 50_000


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


def import_csv(ctx: AppContext, path: Path) -> ImportReport:
    report = ImportReport()
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
    resolver = _PointResolver(ctx, report)
    pending: list[tuple[int, Reading]] = []
    payloads: list[str] = []
    for row in reader:
        line_no = reader.line_num
        if not row or all(not c.strip() for c in row):
            continue
        report.rows += 1
        try:
            sid, ts, value = _parse_row(row, col, resolver)
        except (ValueError, UnitError, registry.RegistryError) as exc:
            report.rejected.append(RowError(line_no, str(exc)))
            continue
        payloads.append(lines[line_no - 1] if line_no - 1 < len(lines) else ",".join(row))
        pending.append((line_no, Reading(sid, ts, value, len(payloads) - 1)))
        if len(pending) >= CHUNK_ROWS:
            _flush(ctx, pending, payloads, report)
            pending, payloads = [], []
    _flush(ctx, pending, payloads, report)
    report.rejected.sort(key=lambda e: e.line)
    return report


def _parse_row(row, col, resolver: "_PointResolver"):
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
    sid = resolver.series(asset, point, mtype)
    # non-finite and implausible values still go on: the pipeline quarantines them
    return sid, ts, value * factor if math.isfinite(value) else value


class _PointResolver:
    def __init__(self, ctx: AppContext, report: ImportReport):
        self.ctx, self.report = ctx, report
        self.cache: dict[tuple[str, str], tuple[int, MetricType]] = {}

    def series(self, asset: str, point: str, mtype: MetricType) -> int:
        hit = self.cache.get((asset, point))
        if hit:
            if hit[1] is not mtype:
                raise ValueError(f"point {point!r} of {asset!r} is a {hit[1].value} series, not {mtype.value}")
            return hit[0]
        with self.ctx.dbs.main.begin() as conn:
            a = registry.asset_by_name(conn, asset)
            if a is None:
                raise ValueError(f"unknown asset {asset!r} (add it with 'wattline assets add')")
            existing = registry.point(conn, a["id"], point)
            if existing is None:
                sid = registry.ensure_points(conn, a["id"], [registry.PointSpec(point, mtype)])[point]
                self.report.points_created.append(f"{asset}/{point}")
            else:
                sid = existing["id"]
                if existing["metric_type"] != mtype.value:
                    raise ValueError(
                        f"point {point!r} of {asset!r} is a {existing['metric_type']} series, not {mtype.value}")
        self.cache[(asset, point)] = (sid, mtype)
        return sid


def _flush(ctx: AppContext, pending, payloads, report: ImportReport) -> None:
    if not pending:
        return
    batch = ReadingBatch.from_readings((r for _, r in pending), payloads, source="csv")
    result = ctx.pipeline.ingest(batch)
    report.written += len(pending) - len(result.quarantined)
    by_key = {(r.series_id, r.ts): line for line, r in pending}
    for q in result.quarantined:
        report.rejected.append(RowError(by_key.get((q.series_id, q.ts), 0), q.reason))

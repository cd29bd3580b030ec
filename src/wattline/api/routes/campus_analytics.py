"""The campus analytics API (issue 10, item 8): a classroom's energy, cost, on-time and
quality per local day, per bucket, per device, per month, and as CSV.

All figures are in the classroom's time zone and the organization's currency, and
add up exactly: a day's summary is the sum of its device breakdown, of its timeline
buckets of any width (5, 15, 60 minutes or a day) and equals the monthly answer's
day, to the milli-Wh and the micro-unit (``domain.campus.Figures``; converted to kWh
and currency units once, at the edge). Days, months and years are read from the
stored aggregates, finer buckets cut from the ledger on read; cost is priced on read
from the ledger with the cost versions in the registry.

Any signed-in role may read (viewer and up, as ``GET /cost-versions``). Errors:
400 ``invalid_parameter`` (naming the parameter), 404 ``not_found`` for a classroom
the caller's organization does not have.
"""

from __future__ import annotations

import csv
import enum
import io
from datetime import date
from typing import Annotated, Iterator

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse

from wattline.api import campus_schemas as CS
from wattline.api import schemas as S
from wattline.api.deps import ctx
from wattline.domain import buckets as B
from wattline.domain import campus as C
from wattline.domain import timeutil
from wattline.security.deps import require_role
from wattline.security.errors import ApiError
from wattline.security.principal import Principal
from wattline.store import campus_queries as Q

router = APIRouter(prefix="/api/power-analytics", tags=["campus analytics"], responses=S.errors(400, 401, 403))


class BucketMinutes(enum.IntEnum):
    """Timeline bucket widths, minutes."""

    FIVE = 5
    FIFTEEN = 15
    HOUR = 60
    DAY = 1440


ClassroomName = Annotated[str, Query(min_length=1, max_length=200, examples=["CR-101"],
                                     description="the classroom's name, e.g. CR-101")]
LocalDate = Annotated[date, Query(description="local date YYYY-MM-DD in the classroom's zone")]
Bound = Annotated[str, Query(min_length=1, max_length=64, description=(
    "a local date (YYYY-MM-DD; an end date is included) or an ISO-8601 datetime (without offset: the "
    "classroom's zone)"))]
Viewer = Annotated[Principal, Depends(require_role("viewer"))]
NOT_FOUND = S.errors(404)

CSV_COLUMNS = ("date", "classroom", "esp32_name", "device_id", "energy_kwh", "cost", "currency", "on_time_sec",
               "high_confidence_pct", "estimated_kwh")


def _bad(parameter: str, message: str, **details) -> ApiError:
    return ApiError(400, "invalid_parameter", message, {"parameter": parameter, **details})


class _Room:
    """A classroom resolved for one request: its devices, their tariffs and the currency."""

    def __init__(self, request: Request, principal: Principal, name: str):
        c = ctx(request)
        self.dbs = c.dbs
        org = Q.organization(c.dbs.main_reader, principal.organization_id)
        room = Q.classroom(c.dbs.main_reader, org, name) if org is not None else None
        if room is None:
            raise ApiError(404, "not_found", f"no classroom {name!r}", {"classroom": name})
        self.room = room
        self.tz = room.timezone
        self.devices = Q.classroom_devices(c.dbs.main_reader, c.dbs.telemetry, org, room.id)
        self.tariffs = Q.tariffs(c.dbs.main_reader, self.devices)
        self.currency = Q.currency(c.dbs.main_reader, room.id)

    def per_device(self, period: str, wanted: list[tuple[int, int]]) -> list[list[C.Figures]]:
        """Figures of each device (in ``self.devices`` order) in each wanted bucket."""
        by_series = Q.figures(self.dbs.telemetry, self.tariffs, period, wanted, self.tz)
        empty = [C.Figures() for _ in wanted]
        return [by_series.get(d.series_id, empty) if d.series_id is not None else empty for d in self.devices]

    def per_bucket(self, period: str, wanted: list[tuple[int, int]]) -> list[C.Figures]:
        """The classroom's figures in each wanted bucket: the exact sum over its devices."""
        rows = self.per_device(period, wanted)
        return [C.total(r[i] for r in rows) for i in range(len(wanted))]


def _day(parameter: str, d: date, tz: str) -> list[tuple[int, int]]:
    try:
        C.check_date(parameter, d)
    except C.PeriodError as exc:
        raise _bad(exc.parameter, str(exc)) from None
    return [timeutil.day_bounds(d, tz)]


@router.get("/classrooms", responses=NOT_FOUND)
def list_classrooms(request: Request, principal: Viewer) -> CS.ClassroomList:
    """The caller's organization's classrooms with their zone and number of devices."""
    c = ctx(request)
    org = Q.organization(c.dbs.main_reader, principal.organization_id)
    rows = Q.classrooms(c.dbs.main_reader, org) if org is not None else []
    return CS.ClassroomList(classrooms=[CS.ClassroomInfo(**r) for r in rows])


@router.get("/summary", responses=NOT_FOUND)
def summary(request: Request, principal: Viewer, classroom: ClassroomName, date: LocalDate) -> CS.ClassroomSummary:
    """A classroom's local day: energy, cost, on-time, devices and quality (the cards)."""
    r = _Room(request, principal, classroom)
    (f,) = r.per_bucket("day", _day("date", date, r.tz))
    return CS.ClassroomSummary(classroom=r.room.name, date=date.isoformat(), timezone=r.tz, currency=r.currency,
                               devices=len(r.devices), quality=CS.quality(f), **CS.amounts(f))


@router.get("/timeline", responses=NOT_FOUND)
def timeline(request: Request, principal: Viewer, classroom: ClassroomName, start: Bound, end: Bound,
             bucket: Annotated[BucketMinutes, Query(description="bucket width, minutes")] = BucketMinutes.HOUR,
             ) -> CS.Timeline:
    """A classroom's buckets of ``bucket`` minutes (on its local wall clock) whose start
    lies in [start, end), and their total. At most ``MAX_TIMELINE_BUCKETS`` buckets."""
    r = _Room(request, principal, classroom)
    try:
        a = C.parse_local_instant("start", start, r.tz, end=False)
        b = C.parse_local_instant("end", end, r.tz, end=True)
    except C.PeriodError as exc:
        raise _bad(exc.parameter, str(exc)) from None
    if b <= a:
        raise _bad("end", "end must be after start")
    minutes = int(bucket)
    width = minutes * 60
    if (b - a) // width > C.MAX_TIMELINE_BUCKETS + 1:  # a cheap bound before listing the buckets
        raise _bad("end", f"at most {C.MAX_TIMELINE_BUCKETS} buckets of {minutes} minutes per request",
                   max_buckets=C.MAX_TIMELINE_BUCKETS, bucket_minutes=minutes)
    period = C.BUCKET_PERIODS[minutes]
    wanted = B.bucket_range(period, a, b, r.tz)
    if len(wanted) > C.MAX_TIMELINE_BUCKETS:
        raise _bad("end", f"at most {C.MAX_TIMELINE_BUCKETS} buckets of {minutes} minutes per request",
                   max_buckets=C.MAX_TIMELINE_BUCKETS, bucket_minutes=minutes, buckets=len(wanted))
    figs = r.per_bucket(period, wanted)
    whole = C.total(figs)
    buckets = [CS.TimelineBucket(start=timeutil.iso(s, r.tz), end=timeutil.iso(e, r.tz), quality=CS.quality(f),
                                 **CS.amounts(f)) for (s, e), f in zip(wanted, figs)]
    return CS.Timeline(classroom=r.room.name, timezone=r.tz, currency=r.currency, bucket_minutes=minutes,
                       start=timeutil.iso(a, r.tz), end=timeutil.iso(b, r.tz), buckets=buckets,
                       quality=CS.quality(whole), **CS.amounts(whole))


@router.get("/device-breakdown", responses=NOT_FOUND)
def device_breakdown(request: Request, principal: Viewer, classroom: ClassroomName,
                     date: LocalDate) -> CS.DeviceBreakdown:
    """Each device of a classroom over a local day (they add up to the summary)."""
    r = _Room(request, principal, classroom)
    rows = r.per_device("day", _day("date", date, r.tz))
    devices = [CS.DeviceFigures(esp32_name=d.esp32_name, device_id=d.device_id, quality=CS.quality(f[0]),
                                **CS.amounts(f[0])) for d, f in zip(r.devices, rows)]
    return CS.DeviceBreakdown(classroom=r.room.name, date=date.isoformat(), timezone=r.tz, currency=r.currency,
                              devices=devices)


@router.get("/monthly", responses=NOT_FOUND)
def monthly(request: Request, principal: Viewer, classroom: ClassroomName,
            year: Annotated[int, Query(ge=C.MIN_YEAR, le=C.MAX_YEAR)],
            month: Annotated[int, Query(ge=1, le=12)]) -> CS.Monthly:
    """A classroom's local month (the stored month aggregates) and each of its days."""
    r = _Room(request, principal, classroom)
    a, b = timeutil.month_bounds(year, month, r.tz)
    (whole,) = r.per_bucket("month", [(a, b)])
    days = B.bucket_range("day", a, b, r.tz)
    figs = r.per_bucket("day", days)
    out = [CS.MonthDay(date=timeutil.local_date(s, r.tz).isoformat(), quality=CS.quality(f), **CS.amounts(f))
           for (s, _e), f in zip(days, figs)]
    return CS.Monthly(classroom=r.room.name, year=year, month=month, timezone=r.tz, currency=r.currency, days=out,
                      quality=CS.quality(whole), **CS.amounts(whole))


@router.get("/export-csv", response_class=StreamingResponse, responses={
    200: {"content": {"text/csv": {"schema": {"type": "string"}}},
          "description": "one row per device per local day: " + ", ".join(CSV_COLUMNS)}, **NOT_FOUND})
def export_csv(request: Request, principal: Viewer, classroom: ClassroomName,
               start: Annotated[date, Query(description="first local date")],
               end: Annotated[date, Query(description="last local date (included)")]) -> StreamingResponse:
    """A classroom's devices per local day from ``start`` to ``end`` (both included, at
    most ``MAX_EXPORT_DAYS``), as CSV: the same figures as the summary and breakdown."""
    r = _Room(request, principal, classroom)
    try:
        C.check_date("start", start)
        C.check_date("end", end)
    except C.PeriodError as exc:
        raise _bad(exc.parameter, str(exc)) from None
    if end < start:
        raise _bad("end", "end must not be before start")
    dates = C.days_between(start, end)
    if len(dates) > C.MAX_EXPORT_DAYS:
        raise _bad("end", f"at most {C.MAX_EXPORT_DAYS} days per export", max_days=C.MAX_EXPORT_DAYS)
    wanted = [timeutil.day_bounds(d, r.tz) for d in dates]
    rows = r.per_device("day", wanted)
    name = f"{r.room.name}_{start.isoformat()}_{end.isoformat()}.csv".replace('"', "")
    return StreamingResponse(_csv_rows(r, dates, rows), media_type="text/csv; charset=utf-8",
                             headers={"Content-Disposition": f'attachment; filename="{name}"'})


def _csv_rows(r: _Room, dates: list[date], rows: list[list[C.Figures]]) -> Iterator[str]:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")

    def flush() -> str:
        text = buf.getvalue()
        buf.seek(0)
        buf.truncate()
        return text

    w.writerow(CSV_COLUMNS)
    yield flush()
    for i, d in enumerate(dates):
        for dev, figs in zip(r.devices, rows):
            f = figs[i]
            pct, cost = f.high_confidence_pct, f.shown_cost_micro
            w.writerow((d.isoformat(), r.room.name, dev.esp32_name, dev.device_id, _num(C.kwh(f.energy_milli_wh)),
                        "" if cost is None else _num(C.money(cost)), r.currency, f.on_time_s,
                        "" if pct is None else pct, _num(C.kwh(f.estimated_milli_wh))))
        yield flush()


def _num(x: float | None) -> str:
    """A kWh or currency figure with up to 6 decimals, never in exponent notation."""
    return "" if x is None else f"{x:.6f}".rstrip("0").rstrip(".") if x else "0"

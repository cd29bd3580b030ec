"""Historical point data (seed 003), the daily aggregation and cleanup crons, and the
database overview.

* ``GET /api/data/historical?systemIds=1,2 | <composite slug>&pointKeys=solar_w,load_w
  &range=1H|6H|24H|7D|30D[&aggregation=raw|5m|daily]``: rows ``{"timestamp", <column>: value}``;
  one system or a composite: columns named by point key; several systems:
  ``"<id>.<key>"``. Level by range: raw <= 6 h, 5 m <= 24 h, daily beyond (or
  ``aggregation=``). A bucket's value is the mean of the readings for power-like points
  (power, state of charge, price, voltage...) and the energy of the bucket, from the
  ledger, for energy points (counters, interval energy), kWh; a raw row is the reading.
  ``timestamp`` is a bucket's start (a reading's instant at the raw level). A composite
  (group of kind ``composite``, by slug) combines its members per bucket by the
  core's roll-up rules (domain/groups.py: power and energy add up, state of charge is
  capacity-weighted); a member without a value in a bucket does not take part in it.
  Every system must be readable by the caller, a composite by its owner, an admin or a
  reader of every member (as for ``/api/data/latest``): 404 otherwise.
* ``POST /api/cron/daily`` ``{"action": "catchup" | "clear"}`` and ``POST /api/cron/cleanup``
  (the cron secret or an admin): jobs/point_daily.py, jobs/cleanup.py, run as job rows.
* ``GET /api/admin/database`` (admin): rows per table of both databases; last daily and
  cleanup runs.

Units: power of a point whose key ends in ``_w`` is in W (the seed's keys), other
power in kW; energy in kWh; the rest in the canonical unit (``metadata.units``).
"""

from __future__ import annotations

import asyncio
import re
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, Field

from wattline import clock
from wattline.api import engine_defer
from wattline.api import schemas as S
from wattline.api.composite_access import readable_composite
from wattline.api.deps import MAX_ID, ctx
from wattline.domain import groups as G
from wattline.domain.point_display import LEVELS, RANGES_S, bucket_value, display_unit, level_for  # noqa: F401
from wattline.jobs import cleanup as cleanup_job
from wattline.jobs import point_daily
from wattline.jobs.runner import JobAlreadyRunning
from wattline.security.deps import require_cron_or_role, require_role
from wattline.security.errors import ApiError
from wattline.security.principal import Principal
from wattline.security.system_access import can_read_system
from wattline.store import composites_repo, point_aggs, systems_repo

router = APIRouter(tags=["historical"], responses=S.errors(401, 403))

MAX_SYSTEMS = 10
MAX_POINT_KEYS = 20
KEY_RE = re.compile(r"^[A-Za-z0-9_]{1,80}$")
SLUG_RE = re.compile(r"^[a-z0-9](?:[a-z0-9_-]{0,62})$")


# ---------------------------------------------------------------- pure rules


def _bad(code: str, message: str, **details: Any) -> ApiError:
    return ApiError(400, code, message, details)


def _split(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def parse_targets(text: str) -> list[int] | str:
    """System ids (``"1,2"``) or one composite slug."""
    tokens = _split(text)
    if not tokens:
        raise _bad("invalid_parameter", "systemIds: give system ids or a composite slug", parameter="systemIds")
    if all(t.isdigit() for t in tokens):
        ids = list(dict.fromkeys(int(t) for t in tokens))
        if any(not 1 <= i <= MAX_ID for i in ids):
            raise _bad("invalid_parameter", "systemIds: ids must be between 1 and 2147483647", parameter="systemIds")
        if len(ids) > MAX_SYSTEMS:
            raise _bad("too_many_systems", f"systemIds: at most {MAX_SYSTEMS} systems per request",
                       parameter="systemIds", max=MAX_SYSTEMS, given=len(ids))
        return ids
    if len(tokens) == 1 and SLUG_RE.match(tokens[0]):
        return tokens[0]
    raise _bad("invalid_parameter", "systemIds: comma-separated system ids, or one composite slug",
               parameter="systemIds")


def parse_keys(text: str) -> list[str]:
    keys = list(dict.fromkeys(_split(text)))
    if not keys:
        raise _bad("invalid_parameter", "pointKeys: give at least one point key", parameter="pointKeys")
    if len(keys) > MAX_POINT_KEYS:
        raise _bad("too_many_point_keys", f"pointKeys: at most {MAX_POINT_KEYS} keys", parameter="pointKeys",
                   max=MAX_POINT_KEYS)
    bad = [k for k in keys if not KEY_RE.match(k)]
    if bad:
        raise _bad("invalid_parameter", "pointKeys: keys are letters, digits and '_'", parameter="pointKeys")
    return keys


# ---------------------------------------------------------------- schemas


class HistoricalMetadata(BaseModel):
    range: str
    aggregation: str
    pointCount: int = Field(description="rows in data")
    systemIds: list[int] = Field(description="the systems asked for (a composite: its members, in order)")
    start: int = Field(description="start of the range, epoch s")
    end: int = Field(description="end of the range (now), epoch s")
    compositeId: int | None = None
    units: dict[str, str] = Field(description="column -> unit of its values")


class HistoricalOut(BaseModel):
    success: bool = True
    data: list[dict[str, float | int | None]]
    metadata: HistoricalMetadata


class DailyIn(BaseModel):
    action: Literal["catchup", "clear"]


class JobRunOut(BaseModel):
    id: str
    kind: str
    status: str
    params: dict | None = None
    result: dict | None = None
    error: str | None = None
    startedAt: str | None = None
    updatedAt: str | None = None


class CronRunOut(BaseModel):
    success: bool
    job: JobRunOut
    deferred: bool = False  # true (202): queued on the job engine; ``job`` is the engine's job, queued
    engineJobId: int | None = None


class TableRows(BaseModel):
    database: Literal["main", "telemetry"]
    name: str
    rows: int


class LastRuns(BaseModel):
    daily: JobRunOut | None
    cleanup: JobRunOut | None


class DatabaseOut(BaseModel):
    tables: list[TableRows]
    lastRuns: LastRuns


def _job(row: dict | None) -> JobRunOut | None:
    if row is None:
        return None
    iso = lambda d: None if d is None else d.isoformat()  # noqa: E731
    return JobRunOut(id=row["id"], kind=row["kind"], status=row["status"], params=row.get("params"),
                     result=row.get("result"), error=row.get("error"), startedAt=iso(row.get("created_at")),
                     updatedAt=iso(row.get("updated_at")))


# ---------------------------------------------------------------- historical


def _not_found(what: str, **details: Any) -> ApiError:
    return ApiError(404, "not_found", f"no {what}", details)


def _resolve(request: Request, principal: Principal, target: list[int] | str) -> dict:
    """Systems (readable by the caller), their points, zones, and the composite if any."""
    c = ctx(request)
    with c.dbs.main_reader.connect() as conn:
        composite = None
        if isinstance(target, str):
            # the rule of /api/data/latest and /api/data/flows: owner, admin, or a reader of every member
            composite = readable_composite(conn, principal, target)
            if composite is None or not composite["members"]:
                raise _not_found(f"composite {target!r}", composite=target)
            ids = [m["id"] for m in composite["members"]]
            systems = {m["id"]: m for m in composite["members"]}
        else:
            ids = target
            systems = {sid: systems_repo.system(conn, sid) for sid in ids}
            for sid, s in systems.items():
                if s is None or not can_read_system(principal, s):
                    raise _not_found(f"system with id {sid}", system_id=sid)
        pts = point_aggs.system_points(conn, ids)
        caps = composites_repo.capacities_kwh(conn, ids) if composite is not None else {}
    return {"ids": list(ids), "systems": systems, "points": pts, "composite": composite, "caps": caps}


# A raw answer is one row per reading: 30 days of minute polls of ten points is 432,000
# rows, tens of MB of JSON. Past this many the caller is told to aggregate instead.
MAX_RAW_READINGS = 100_000


def _series_values(conn, level: str, wanted: list[tuple[int, str, dict]], tz: dict[int, str],
                   start: int, end: int) -> dict[tuple[int, str], dict[int, float]]:
    """(system, key) -> {timestamp: value in the display unit}."""
    out: dict[tuple[int, str], dict[int, float]] = {(s, k): {} for s, k, _ in wanted}
    by_series = {p["series_id"]: (s, k, p) for s, k, p in wanted}
    if level == "raw":
        n = point_aggs.raw_row_count(conn, list(by_series), start, end)
        if n > MAX_RAW_READINGS:
            raise _bad("too_many_rows", f"{n} raw readings in this window, more than {MAX_RAW_READINGS}: "
                       "ask for aggregation=5m or daily, or a shorter range", parameter="aggregation",
                       readings=n, limit=MAX_RAW_READINGS)
        for series_id, ts, value in point_aggs.raw_rows(conn, list(by_series), start, end):
            s, k, p = by_series[series_id]
            out[(s, k)][int(ts)] = float(value) * display_unit(k, p["metric_type"])[0]
        return out
    if level == "daily":
        rows = point_aggs.daily_rows(conn, list(by_series), start, end)
    else:
        zones: dict[str, list[int]] = {}  # one read per local clock (a composite: usually one)
        for series_id, (s, _, _) in by_series.items():
            zones.setdefault(tz[s], []).append(series_id)
        rows = [r for zone, sids in zones.items()
                for r in point_aggs.five_minute_rows_many(conn, sids, zone, start, end)]
    for r in rows:
        s, k, p = by_series[r["series_id"]]
        v = bucket_value(p["metric_type"], r)
        if v is not None:
            out[(s, k)][int(r["start"])] = v * display_unit(k, p["metric_type"])[0]
    return out


@router.get("/api/data/historical", responses=S.errors(400, 404))
def historical(
    request: Request, principal: Annotated[Principal, Depends(require_role("viewer"))],
    system_ids: Annotated[str, Query(alias="systemIds", max_length=400,
                                     description="comma-separated system ids, or a composite slug")],
    point_keys: Annotated[str, Query(alias="pointKeys", max_length=2000)],
    range_key: Annotated[str, Query(alias="range", max_length=8, description="1H | 6H | 24H | 7D | 30D")],
    aggregation: Annotated[str | None, Query(max_length=8, description="raw | 5m | daily (default: by range)")]
    = None,
) -> HistoricalOut:
    """Time series of points of one or more systems, or of a composite, for charts."""
    if range_key not in RANGES_S:
        raise _bad("invalid_parameter", f"range must be one of {', '.join(RANGES_S)}", parameter="range")
    if aggregation is not None and aggregation not in LEVELS:
        raise _bad("invalid_parameter", f"aggregation must be one of {', '.join(LEVELS)}", parameter="aggregation")
    level = aggregation or level_for(range_key)
    target = parse_targets(system_ids)
    keys = parse_keys(point_keys)
    r = _resolve(request, principal, target)
    ids, pts, composite = r["ids"], r["points"], r["composite"]
    unknown = [k for k in keys if not any(k in pts[s] for s in ids)]
    if unknown:
        raise _bad("unknown_point_key", f"no point {', '.join(map(repr, unknown))} on the systems asked for",
                   parameter="pointKeys", keys=unknown)
    wanted = [(s, k, pts[s][k]) for s in ids for k in keys if k in pts[s]]
    rules: dict[str, G.Rule] = {}
    if composite is not None:
        for k in keys:
            mt = next(pts[s][k]["metric_type"] for s in ids if k in pts[s])
            try:
                rules[k] = G.rule_for("composite", mt)
            except G.NoRule:
                raise _bad("cannot_roll_up", f"a composite does not combine {mt} points ({k!r})",
                           parameter="pointKeys", key=k) from None
    end = clock.now_s()
    start = end - RANGES_S[range_key]
    tz = {s: r["systems"][s]["timezone"] for s in ids}
    with ctx(request).dbs.telemetry.connect() as conn:
        values = _series_values(conn, level, wanted, tz, start, end + 1)

    units: dict[str, str] = {}
    columns: dict[str, dict[int, float]] = {}
    if composite is not None:
        caps = [r["caps"].get(s) for s in ids]
        for k in keys:
            members = [values.get((s, k), {}) for s in ids]
            stamps = sorted(set().union(*members))
            columns[k] = {}
            for t in stamps:
                v = G.combine(rules[k], [m.get(t) for m in members], caps)
                if v is not None:
                    columns[k][t] = v
            units[k] = display_unit(k, next(p["metric_type"] for s, kk, p in wanted if kk == k))[1]
    else:
        single = len(ids) == 1
        for s, k, p in wanted:
            col = k if single else f"{s}.{k}"
            columns[col] = values[(s, k)]
            units[col] = display_unit(k, p["metric_type"])[1]
    stamps = sorted(set().union(*columns.values())) if columns else []
    data = [{"timestamp": t, **{col: vals.get(t) for col, vals in columns.items()}} for t in stamps]
    return HistoricalOut(data=data, metadata=HistoricalMetadata(
        range=range_key, aggregation=level, pointCount=len(data), systemIds=ids, start=start, end=end,
        compositeId=None if composite is None else composite["id"], units=units))


# ---------------------------------------------------------------- crons and the overview


async def _deferred(request: Request, response: Response, task: str, kind: str, what: str,
                    **kwargs) -> CronRunOut:
    """The cron's job queued on the engine (202); 409 when the same one is already queued."""
    qlock = ":".join([task, *map(str, kwargs.values())])
    jid = await engine_defer.defer(request, task, lock=task, queueing_lock=qlock, **kwargs)
    if jid is None:
        raise ApiError(409, "already_running", f"{what} is already queued", {"kind": kind})
    response.status_code = 202
    return CronRunOut(success=True, deferred=True, engineJobId=jid, job=JobRunOut(
        id=engine_defer.engine_job_id(jid), kind=kind, status="queued", params=kwargs or None))


@router.post("/api/cron/daily", responses={202: {"model": CronRunOut, "description": "Queued on the job engine"},
                                           **S.errors(400, 409)})
async def cron_daily(request: Request, response: Response, body: DailyIn,
                     principal: Annotated[Principal, Depends(require_cron_or_role("admin"))]) -> CronRunOut:
    """``catchup``: derive the missing daily aggregates; ``clear``: re-derive them all
    (days from each point's first remaining raw reading on; older days are kept).
    With the job engine: 202, queued for a worker."""
    if engine_defer.engine_on(request):
        return await _deferred(request, response, "daily", "point_daily", "a daily aggregation", action=body.action)
    try:
        job = await point_daily.run_daily_job(ctx(request), body.action)
    except JobAlreadyRunning:
        raise ApiError(409, "already_running", "a daily aggregation runs already", {"kind": "point_daily"}) from None
    return CronRunOut(success=job["status"] == "succeeded", job=_job(job))


@router.post("/api/cron/cleanup", responses={202: {"model": CronRunOut, "description": "Queued on the job engine"},
                                             **S.errors(409)})
async def cron_cleanup(request: Request, response: Response,
                       principal: Annotated[Principal, Depends(require_cron_or_role("admin"))]) -> CronRunOut:
    """Delete raw readings older than each organization's ``raw_retention_days`` (whole
    local days; the daily aggregates stay). With the job engine: 202, queued for a worker."""
    if engine_defer.engine_on(request):
        return await _deferred(request, response, "cleanup", "cleanup", "a cleanup")
    try:
        job = await cleanup_job.run_cleanup_job(ctx(request))
    except JobAlreadyRunning:
        raise ApiError(409, "already_running", "a cleanup runs already", {"kind": "cleanup"}) from None
    return CronRunOut(success=job["status"] == "succeeded", job=_job(job))


@router.get("/api/admin/database", dependencies=[Depends(require_role("admin"))])
async def admin_database(request: Request) -> DatabaseOut:
    """Rows per table of the main and telemetry databases; the last daily and cleanup runs."""
    dbs = ctx(request).dbs

    def read() -> DatabaseOut:
        tables = point_aggs.row_counts(dbs.main_reader, "main") + point_aggs.row_counts(dbs.telemetry, "telemetry")
        return DatabaseOut(tables=[TableRows(**t) for t in tables], lastRuns=LastRuns(
            daily=_job(point_aggs.last_job(dbs.telemetry, point_daily.JOB_KIND)),
            cleanup=_job(point_aggs.last_job(dbs.telemetry, cleanup_job.JOB_KIND))))

    return await asyncio.to_thread(read)

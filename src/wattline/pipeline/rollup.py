"""Roll-up stage: plant summaries, group roll-ups, the 31-day window.

* ``plant_aggregates`` (seed 000): energy of today, this month and this year in the
  plant's own timezone (from the aggregates, i.e. from the ledger), lifetime energy
  (the latest reading of its cumulative counter), current power and the last update.
* ``work_order_aggregates`` keeps the seed's definition: the sum of each member's
  current day, month and year in the member's own zone.
* A group's period series (daily bars, months, years) are periods of the group's
  zone (its own, else its organization's), cut from the members' ledger entries with
  the bucket arithmetic of the aggregation stage, so they agree with the members'
  15-minute pieces to the milliwatt-hour in every zone whose offset is a multiple of
  15 minutes. Members combine by the rules of ``domain.groups`` for the group's kind.
* Seed 000's 31-day window ``telemetry_15m_recent``.

Group membership is read from the registry with the read-only handle. SQL lives in
``store.summaries_repo`` and ``store.groups_repo``.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np

from wattline import clock
from wattline.domain import groups as rules
from wattline.domain import timeutil
from wattline.domain.metrics import MetricType
from wattline.domain import buckets as B
from wattline.domain.quality import Flag, flag_names
from wattline.store import groups_repo, summaries_repo

ENERGY_KEYS = ("energy_total", "power")  # preferred source of a plant's energy, in order
WINDOW_S = summaries_repo.WINDOW_S


# ------------------------------------------------------------------ summaries

def refresh_summaries(conn, main_reader, asset_ids, now: int | None = None) -> None:
    """Refresh the plant summaries of ``asset_ids`` and of the work orders they are in.

    ``conn``: the telemetry transaction; ``main_reader``: the registry's read-only engine.
    """
    as_of = clock.now_s() if now is None else int(now)
    with main_reader.connect() as mconn:
        plants = groups_repo.assets_of_kind(mconn, asset_ids, "plant")
        orders = groups_repo.groups_of(mconn, plants, kind="work_order")
        members = {g: groups_repo.member_ids(mconn, g) for g in orders}
    refresh_plants(conn, plants, as_of)
    for g in orders:
        refresh_work_order(conn, g, members[g])


def refresh_plants(conn, plant_ids: list[int], as_of: int) -> None:
    """Recompute ``plant_aggregates`` rows of many plants with a handful of queries."""
    if not plant_ids:
        return
    series: dict[int, dict[str, tuple[int, str, str | None]]] = {}
    for aid, key, sid, tz, vid, _mt in summaries_repo.series_of_assets(conn, plant_ids):
        series.setdefault(aid, {})[key] = (sid, tz, vid)
    latest = summaries_repo.latest_many(conn, [sid for s in series.values() for k, (sid, _, _) in s.items()
                                               if k in ENERGY_KEYS])
    wanted, plan = [], {}
    for pid, pts in series.items():
        key = next((k for k in ENERGY_KEYS if k in pts), None)
        if key is None:
            continue
        sid, tz, _ = pts[key]
        d = timeutil.local_date(as_of, tz)
        starts = {
            "day": timeutil.day_bounds(d, tz)[0],
            "month": timeutil.month_bounds(d.year, d.month, tz)[0],
            "year": timeutil.year_bounds(d.year, tz)[0],
        }
        plan[pid] = (key, starts)
        wanted.extend((sid, period, start) for period, start in starts.items())
    buckets = summaries_repo.buckets_many(conn, wanted)
    rows = []
    for pid, (key, starts) in plan.items():
        pts = series[pid]
        sid, _tz, vendor_plant_id = pts[key]
        energy, flags = {}, 0
        for period, start in starts.items():
            b = buckets.get((sid, period, start))
            energy[period] = (b[0] or 0) if b else 0
            if b:
                flags |= b[1] | (Flag.ESTIMATED if (b[2] or b[3]) else 0)
        last_ts, total_kwh, power = None, None, None
        if "energy_total" in pts and pts["energy_total"][0] in latest:
            last_ts, total_kwh = latest[pts["energy_total"][0]]
        if "power" in pts and pts["power"][0] in latest:
            p_ts, power = latest[pts["power"][0]]
            last_ts = max(last_ts or p_ts, p_ts)
        if last_ts is None:
            continue
        if total_kwh is None:  # no lifetime counter: the ledger's lifetime sum
            total_kwh = summaries_repo.lifetime_ledger_milli_wh(conn, sid) / 1e6
        rows.append((
            pid, vendor_plant_id or "",
            round(energy["day"] / 1e6, 3), round(energy["month"] / 1e9, 3), round(energy["year"] / 1e9, 3),
            round(total_kwh / 1000.0, 3), None if power is None else round(power, 3),
            datetime.fromtimestamp(last_ts, timezone.utc), clock.now_dt(), int(flags),
        ))
    summaries_repo.upsert_plant_aggregates(conn, rows)


def refresh_work_order(conn, work_order_id: int, plant_ids: list[int]) -> None:
    """``work_order_aggregates``: the members' current periods, each in its own zone,
    combined by the work-order rules (energy and power add up)."""
    rows = summaries_repo.plant_aggregate_rows(conn, plant_ids)
    if not rows:
        return
    energy_rule = rules.rule_for("work_order", MetricType.COUNTER)
    power_rule = rules.rule_for("work_order", MetricType.POWER)

    def total(col: str, rule=energy_rule) -> float | None:
        value = rules.combine(rule, [r[col] for r in rows])
        return None if value is None else round(value, 3)

    flags = 0
    for r in rows:
        flags |= r["quality_flags"]
    row = (
        work_order_id, total("daily_energy_kwh") or 0.0, total("monthly_energy_mwh") or 0.0,
        total("yearly_energy_mwh") or 0.0, total("total_energy_mwh") or 0.0,
        total("current_power_kw", power_rule),
        max(_aware(r["last_update_time"]) for r in rows), clock.now_dt(), flags,
    )
    summaries_repo.upsert_work_order_aggregate(conn, row)


def _aware(dt: datetime) -> datetime:
    return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)


# ------------------------------------------------------------------ group periods

def group_timezone(main_reader, group_id: int) -> str | None:
    with main_reader.connect() as mconn:
        g = groups_repo.group(mconn, group_id)
    return None if g is None else g.timezone


def group_energy_periods(telemetry, main_reader, group_id: int, period: str, count: int,
                         now: int | None = None) -> list[dict]:
    """The group's energy in each of its last ``count`` periods of its own zone.

    Parameters
    ----------
    telemetry, main_reader : engines of the telemetry database and the registry (read-only).
    group_id : int
    period : {'day', 'month', 'year'}
        Calendar periods of the group's timezone.
    count : int
        Number of periods, the current one included (the last in the list).
    now : int, optional
        Epoch seconds; default the clock.

    Returns
    -------
    list of dict
        Oldest first: ``date`` (ISO date of the period's first local day), ``start`` /
        ``end`` (ISO-8601 in the group's zone), ``energy_kwh`` (kWh, from integer
        milli-Wh) and ``quality`` (flag names; ``no_data`` if no member had a ledger
        entry in it). Empty if there is no such group.
    """
    if period not in B.CALENDAR_PERIODS:
        raise ValueError(f"period must be one of {', '.join(B.CALENDAR_PERIODS)}")
    as_of = clock.now_s() if now is None else int(now)
    with main_reader.connect() as mconn:
        g = groups_repo.group(mconn, group_id)
    if g is None:
        return []
    tz = g.timezone
    periods = _last_periods(period, count, as_of, tz)
    start, end = periods[0][0], periods[-1][1]
    with telemetry.connect() as conn:
        energy_series = _energy_series(summaries_repo.series_of_assets(conn, g.member_ids))
        led = summaries_repo.ledger_entries(conn, energy_series, start, end)
    totals = _cut(led, tz, period, start, end)
    out = []
    for s, e in periods:
        energy, flags, _n, estimated = totals.get(s, (0, int(Flag.NO_DATA), 0, False))
        if estimated:
            flags |= Flag.ESTIMATED
        out.append({"date": timeutil.local_date(s, tz).isoformat(), "start": timeutil.iso(s, tz),
                    "end": timeutil.iso(e, tz), "energy_kwh": round(energy / 1e6, 6),
                    "quality": flag_names(int(flags))})
    return out


def group_daily_bars(telemetry, main_reader, group_id: int, days: int = 31, now: int | None = None) -> list[dict]:
    """The group's last ``days`` local days (today included) in its own zone: exactly
    ``days`` bars, whatever the members' zones."""
    return group_energy_periods(telemetry, main_reader, group_id, "day", days, now)


def _energy_series(series_rows) -> list[int]:
    """Each member's energy series: its counter if it has one, else its power."""
    by_asset: dict[int, dict[str, int]] = {}
    for aid, key, sid, *_ in series_rows:
        by_asset.setdefault(aid, {})[key] = sid
    out = []
    for pts in by_asset.values():
        key = next((k for k in ENERGY_KEYS if k in pts), None)
        if key is not None:
            out.append(pts[key])
    return sorted(out)


def _last_periods(period: str, count: int, as_of: int, tz: str) -> list[tuple[int, int]]:
    if count < 1:
        raise ValueError("count must be at least 1")
    today = timeutil.local_date(as_of, tz)
    if period == "day":
        first = today - timedelta(days=count - 1)
    elif period == "month":
        m = today.year * 12 + today.month - 1 - (count - 1)
        first = today.replace(year=m // 12, month=m % 12 + 1, day=1)
    else:
        first = today.replace(year=today.year - (count - 1), month=1, day=1)
    return B.bucket_range(period, timeutil.local_midnight(first, tz), as_of + 1, tz)


def _cut(led: dict, tz: str, period: str, start: int, end: int) -> dict[int, tuple[int, int, int, bool]]:
    """Members' ledger entries -> the group's energy per period of zone ``tz``."""
    if not len(led["series_id"]):
        return {}
    sids = np.unique(led["series_id"]).tolist()
    no_readings = {"series_id": np.zeros(0, np.int64), "ts": np.zeros(0, np.int64),
                   "value": np.zeros(0, np.float64)}
    # every member cut at the group's midnights (not its own), then the group's months/years
    bk = B.day_buckets(led, no_readings, {int(s): tz for s in sids})
    if period != "day" and len(bk["series_id"]):
        ps, pe = B.calendar_parents(bk["start"], {int(s): tz for s in sids}, bk["series_id"], period)
        bk = B.compose(bk, ps, pe)
    inside = (bk["start"] >= start) & (bk["start"] < end)
    bk = {k: v[inside] for k, v in bk.items()}
    return rules.sum_periods(bk["start"], bk["energy"], bk["flags"], bk["ledger_count"],
                             bk["split_start"] | bk["split_end"])


# ------------------------------------------------------------------ group latest values

def group_latest(telemetry, main_reader, group_id: int, point_key: str) -> float | None:
    """The group's current value of ``point_key`` from its members' latest readings,
    combined by the rule of the group's kind for the point's metric type (state of
    charge: capacity-weighted where every member's battery capacity is known)."""
    with main_reader.connect() as mconn:
        g = groups_repo.group(mconn, group_id)
    if g is None:
        return None
    capacity = {m.asset_id: rules.battery_capacity_kwh(m.attributes) for m in g.members}
    with telemetry.connect() as conn:
        found = [(aid, sid, mt) for aid, key, sid, _tz, _v, mt in summaries_repo.series_of_assets(conn, g.member_ids)
                 if key == point_key]
        latest = summaries_repo.latest_many(conn, [sid for _, sid, _ in found])
    if not found:
        return None
    rule = rules.rule_for(g.kind, found[0][2])
    values = [latest[sid][1] if sid in latest else None for _, sid, _ in found]
    return rules.combine(rule, values, [capacity.get(aid) for aid, _, _ in found])


# ------------------------------------------------------------------ 31-day window

def refresh_window(conn, plant_ids: list[int], now: int) -> None:
    """Seed 000's 31-day window: the plants' last 31 days of 15-minute points."""
    summaries_repo.replace_window(conn, plant_ids, now)


def expire_window(conn, now: int) -> int:
    """Drop window rows older than 31 days (readings stay); returns rows deleted."""
    return summaries_repo.expire_window(conn, now)

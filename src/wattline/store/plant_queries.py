"""Read models of plants and work orders for the API and the dashboard.

Queries go to readings and aggregates by series id and time range, which the
primary keys answer directly (no scan of the ``telemetry_15m`` view).
"""

from __future__ import annotations

import json
from datetime import datetime, timezone

from sqlalchemy import Engine, select

from wattline.domain import timeutil
from wattline.domain.cost import MICRO, MIXED_CURRENCY, NO_COST_VERSION, BucketCost
from wattline.domain.health import data_health
from wattline.domain.quality import Flag, flag_names
from wattline.store import energy_costs
from wattline.store.tables import (
    assets, group_members, groups, plant_aggregates, points, vendor_sync_logs, work_order_aggregates,
)

SUMMARY_FIELDS = ("daily_energy_kwh", "monthly_energy_mwh", "yearly_energy_mwh", "total_energy_mwh",
                  "current_power_kw")


def iso_utc(dt) -> str | None:
    """A stored timestamp (aware, naive UTC or SQLite text) as ISO-8601 UTC with Z."""
    if dt is None:
        return None
    if isinstance(dt, str):
        dt = datetime.fromisoformat(dt)
    dt = dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)
    return dt.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def plant(main: Engine, plant_id: int) -> dict | None:
    with main.connect() as conn:
        row = conn.execute(select(assets).where(assets.c.id == plant_id, assets.c.kind == "plant")).mappings().first()
        if row is None:
            return None
        series = {k: i for k, i in conn.execute(select(points.c.key, points.c.id).where(points.c.asset_id == plant_id))}
    return {**dict(row), "series": series}


def plants(main: Engine) -> list[dict]:
    with main.connect() as conn:
        rows = conn.execute(select(assets).where(assets.c.kind == "plant").order_by(assets.c.id)).mappings().all()
    return [dict(r) for r in rows]


def summary(telemetry: Engine, plant_id: int) -> dict | None:
    with telemetry.connect() as conn:
        row = conn.execute(select(plant_aggregates).where(plant_aggregates.c.plant_id == plant_id)).mappings().first()
    return _summary(row)


def summaries(telemetry: Engine) -> dict[int, dict]:
    with telemetry.connect() as conn:
        return {r["plant_id"]: _summary(r) for r in conn.execute(select(plant_aggregates)).mappings()}


def _summary(row) -> dict | None:
    if row is None:
        return None
    out = {k: (None if row[k] is None else float(row[k])) for k in SUMMARY_FIELDS}
    out["last_update_time"] = iso_utc(row["last_update_time"])
    out["updated_at"] = iso_utc(row["updated_at"])
    out["quality"] = flag_names(row["quality_flags"])
    return out


def health(last_update_iso: str | None, expected_interval_s: int, now: int) -> str:
    """green: data within two expected intervals, yellow: within four, red: older or never."""
    return data_health(None if last_update_iso is None else timeutil.parse_instant(last_update_iso),
                       expected_interval_s, now)


def telemetry_rows(telemetry: Engine, series: dict[str, int], since: int, until: int) -> list[dict]:
    """Seed 000's /api/telemetry/plant rows: ts, total_energy_mwh, power_kw, raw."""
    e, p = series.get("energy_total"), series.get("power")
    if e is None and p is None:
        return []
    base = e if e is not None else p
    other = f"LEFT JOIN readings pw ON pw.series_id = {int(p)} AND pw.ts = r.ts" if (e is not None and p is not None) else ""
    power_col = "pw.value" if other else ("r.value" if e is None else "NULL")
    energy_col = "r.value / 1000.0" if e is not None else "NULL"
    sql = f"""
        SELECT r.ts, {energy_col}, {power_col}, ev.payload FROM readings r {other}
        LEFT JOIN raw_events ev ON ev.id = r.raw_event_id
        WHERE r.series_id = {int(base)} AND r.ts >= {int(since)} AND r.ts < {int(until)}
        ORDER BY r.ts
    """
    with telemetry.connect() as conn:
        rows = conn.exec_driver_sql(sql).all()
    return [{"ts": timeutil.iso(ts), "total_energy_mwh": None if en is None else round(en, 6),
             "power_kw": pw, "raw": _json(raw)} for ts, en, pw, raw in rows]


def _json(text):
    if text is None:
        return {}
    try:
        return json.loads(text)
    except ValueError:
        return {"text": text}


def series_points(telemetry: Engine, series_id: int | None, since: int, until: int, scale: float = 1.0):
    """(iso ts, value) pairs of one series in [since, until)."""
    if series_id is None:
        return []
    with telemetry.connect() as conn:
        rows = conn.exec_driver_sql(
            f"SELECT ts, value FROM readings WHERE series_id = {int(series_id)} "
            f"AND ts >= {int(since)} AND ts < {int(until)} ORDER BY ts").all()
    return [(timeutil.iso(t), round(v * scale, 6)) for t, v in rows]


def daily_energy(telemetry: Engine, series_ids: list[int], tz: str, days: int, now: int) -> list[dict]:
    """Energy per local day over the last ``days`` days (today included), summed over series."""
    today = timeutil.local_date(now, tz)
    from datetime import timedelta

    first = today - timedelta(days=days - 1)
    start = timeutil.day_bounds(first, tz)[0]
    end = timeutil.day_bounds(today, tz)[1]
    bars: dict[int, dict] = {}
    d = first
    while d <= today:
        s, e = timeutil.day_bounds(d, tz)
        bars[s] = {"date": d.isoformat(), "start": timeutil.iso(s, tz), "end": timeutil.iso(e, tz),
                   "energy_kwh": 0.0, "flags": int(Flag.NO_DATA)}
        d += timedelta(days=1)
    if series_ids:
        with telemetry.connect() as conn:
            rows = conn.exec_driver_sql(
                "SELECT bucket_start, energy_milli_wh, flags, split_start, split_end, ledger_count FROM aggregates "
                f"WHERE series_id IN ({', '.join(str(int(s)) for s in series_ids)}) AND period = 'day' "
                f"AND bucket_start >= {start} AND bucket_start < {end}").all()
        for s, energy, flags, ss, se, n in rows:
            bar = bars.get(s)
            if bar is None or not n:
                continue
            bar["flags"] &= ~int(Flag.NO_DATA)
            bar["energy_kwh"] = round(bar["energy_kwh"] + (energy or 0) / 1e6, 6)
            bar["flags"] |= flags | (Flag.ESTIMATED if (ss or se) else 0)
    out = []
    for bar in bars.values():
        bar["quality"] = flag_names(bar.pop("flags"))
        out.append(bar)
    return out


def work_orders(main: Engine) -> list[dict]:
    with main.connect() as conn:
        rows = conn.execute(select(groups).where(groups.c.kind == "work_order").order_by(groups.c.id)).mappings().all()
        members = conn.execute(select(group_members.c.group_id, group_members.c.asset_id)).all()
    by: dict[int, list[int]] = {}
    for g, a in members:
        by.setdefault(g, []).append(a)
    return [{**dict(r), "plant_ids": sorted(by.get(r["id"], []))} for r in rows]


def work_order(main: Engine, work_order_id: int) -> dict | None:
    return next((w for w in work_orders(main) if w["id"] == work_order_id), None)


def work_order_summary(telemetry: Engine, work_order_id: int) -> dict | None:
    with telemetry.connect() as conn:
        row = conn.execute(select(work_order_aggregates).where(
            work_order_aggregates.c.work_order_id == work_order_id)).mappings().first()
    return _summary(row)


def sync_logs(telemetry: Engine, *, plant_id: int | None = None, status: str | None = None,
              limit: int = 100) -> list[dict]:
    q = select(vendor_sync_logs).order_by(vendor_sync_logs.c.id.desc()).limit(limit)
    if plant_id is not None:
        q = q.where(vendor_sync_logs.c.plant_id == plant_id)
    if status:
        q = q.where(vendor_sync_logs.c.status == status)
    with telemetry.connect() as conn:
        rows = conn.execute(q).mappings().all()
    out = []
    for r in rows:
        d = dict(r)
        d["started_at"], d["completed_at"] = iso_utc(r["started_at"]), iso_utc(r["completed_at"])
        meta = r["metadata"] or {}
        d["duration_ms"] = meta.get("duration_ms")
        out.append(d)
    return out


# ------------------------------------------------------------------ cost (priced on read)
#
# Every energy of a summary or a bar carries its cost next to it: ``<period>_cost``
# (currency units, exact below 10**9), ``<period>_cost_micro`` (the integer micro-units
# it is summed in), the ``currency`` and the cost quality (``no_cost_version``: null, no
# version prices it — never 0; ``partly_unpriced``; ``mixed_currency``). Prices come
# from ``store.energy_costs`` over the same series and periods as the energies.

COST_PERIODS = (("daily", "day"), ("monthly", "month"), ("yearly", "year"), ("total", "lifetime"))


def _money(micro: int | None) -> float | None:
    return None if micro is None else micro / MICRO


def _cost_fields(costs: dict[str, BucketCost] | None) -> dict:
    """Summary cost fields from {day, month, year, lifetime: BucketCost} (None: none)."""
    costs = costs or {}
    priced = [costs[p] for _, p in reversed(COST_PERIODS) if p in costs and costs[p].cost_micro is not None]
    currency = priced[0].currency if priced else None
    out: dict = {"currency": currency, "cost_quality": {}}
    for name, period in COST_PERIODS:
        c = costs.get(period)
        micro, notes = (None, [NO_COST_VERSION]) if c is None else (c.cost_micro, list(c.notes))
        if micro is not None and c.currency != currency and micro:  # another currency than the rest
            micro, notes = None, [MIXED_CURRENCY]
        out[f"{name}_cost"], out[f"{name}_cost_micro"] = _money(micro), micro
        out["cost_quality"][name] = notes
    return out


def _anchor(summary: dict) -> int:
    """The instant whose day, month and year a summary's energies are of: its refresh."""
    return timeutil.parse_instant(summary["updated_at"] or summary["last_update_time"])


def summary_costs(main_reader: Engine, telemetry: Engine, sums: dict[int, dict | None],
                  pricing: energy_costs.PlantPricing | None = None) -> dict[int, dict[str, BucketCost]]:
    """{day, month, year, lifetime: BucketCost} of each plant of ``sums`` (plant id ->
    :func:`summary`) that has a summary: the periods its energies are of (``pricing``:
    ``energy_costs.plant_pricing`` of them, if the caller has it)."""
    anchors = {pid: _anchor(s) for pid, s in sums.items() if s}
    return energy_costs.summary_costs(main_reader, telemetry, anchors, pricing) if anchors else {}


def priced_summaries(main_reader: Engine, telemetry: Engine, sums: dict[int, dict | None],
                     costs: dict[int, dict[str, BucketCost]] | None = None) -> dict[int, dict | None]:
    """Plant summaries (plant id -> :func:`summary`) with their cost fields added
    (``costs``: :func:`summary_costs` of them, if already priced)."""
    if costs is None:
        costs = summary_costs(main_reader, telemetry, sums)
    return {pid: (None if s is None else {**s, **_cost_fields(costs.get(pid))}) for pid, s in sums.items()}


def priced_work_order_summary(summary_row: dict | None, member_costs: list[dict[str, BucketCost]]) -> dict | None:
    """A work order's summary with cost: each period the sum of its member plants'
    (each in its own zone, as the work order's energies are)."""
    if summary_row is None:
        return None
    combined = {}
    for _, period in COST_PERIODS:
        parts = [m[period] for m in member_costs if period in m]
        if parts:
            combined[period] = energy_costs.combine(parts, min(p.start for p in parts), max(p.end for p in parts))
    return {**summary_row, **_cost_fields(combined)}


def bars_with_costs(bars: list[dict], costs: list[BucketCost]) -> list[dict]:
    """Daily bars (``date, start, end, energy_kwh, quality``) with ``cost``,
    ``cost_micro``, ``currency`` and ``cost_quality`` of the same day."""
    return [{**b, "cost": _money(c.cost_micro), "cost_micro": c.cost_micro, "currency": c.currency,
             "cost_quality": list(c.notes)} for b, c in zip(bars, costs, strict=True)]


def bar_bounds(bars: list[dict]) -> list[tuple[int, int]]:
    """(start, end) UTC epoch seconds of each bar."""
    return [(timeutil.parse_instant(b["start"]), timeutil.parse_instant(b["end"])) for b in bars]


def plant_daily_bars(main_reader: Engine, telemetry: Engine, plant: dict, days: int, now: int) -> list[dict]:
    """A plant's last ``days`` local days (:func:`daily_energy` of its energy series,
    ``energy_total`` else ``power``) with each day's cost."""
    sid = plant["series"].get("energy_total") or plant["series"].get("power")
    bars = daily_energy(telemetry, [sid] if sid else [], plant["timezone"], days, now)
    return bars_with_costs(bars, energy_costs.plant_day_costs(main_reader, telemetry, plant["id"], bar_bounds(bars)))

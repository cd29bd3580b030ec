"""Read models shared by the CLI and the API."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine, select

from wattline.domain import timeutil
from wattline.domain import buckets as B
from wattline.domain.quality import Flag, flag_names
from wattline.store.fine_buckets import fixed_on_read
from wattline.store.tables import aggregates


@dataclass
class EnergyBucket:
    start: int
    end: int
    energy_milli_wh: int
    flags: int

    @property
    def energy_kwh(self) -> float:
        return self.energy_milli_wh / 1e6

    @property
    def quality(self) -> list[str]:
        return flag_names(self.flags)


def energy_buckets(telemetry: Engine, series_id: int, period: str, start_ts: int, end_ts: int,
                   tz: str) -> list[EnergyBucket]:
    """Every ``period`` bucket starting in [start_ts, end_ts) with its energy and
    quality; a bucket with no stored data has 0 energy and the ``no_data`` flag."""
    if period not in B.PERIODS:
        raise ValueError(f"period must be one of {', '.join(B.PERIODS)}")
    wanted = B.bucket_range(period, start_ts, end_ts, tz)
    if period in B.FIXED_PERIODS:
        return _fixed(telemetry, series_id, period, wanted, tz)
    with telemetry.connect() as conn:
        rows = conn.execute(
            select(aggregates.c.bucket_start, aggregates.c.energy_milli_wh, aggregates.c.flags,
                   aggregates.c.split_start, aggregates.c.split_end, aggregates.c.ledger_count)
            .where(aggregates.c.series_id == series_id, aggregates.c.period == period,
                   aggregates.c.bucket_start >= start_ts, aggregates.c.bucket_start < end_ts)
        ).all()
    stored = {r[0]: r for r in rows}
    out = []
    for s, e in wanted:
        r = stored.get(s)
        if r is None or not r[5]:
            out.append(EnergyBucket(s, e, 0, int(Flag.NO_DATA)))
            continue
        flags = r[2] | (Flag.ESTIMATED if (r[3] or r[4]) else 0)
        out.append(EnergyBucket(s, e, r[1] or 0, int(flags)))
    return out


def _fixed(telemetry: Engine, series_id: int, period: str, wanted: list[tuple[int, int]],
           tz: str) -> list[EnergyBucket]:
    """5-minute, 15-minute and hourly buckets are computed from the ledger on read."""
    if not wanted:
        return []
    with telemetry.connect() as conn:
        bk = fixed_on_read(conn, series_id, period, wanted[0][0], wanted[-1][1], tz)
    got = {int(s): i for i, s in enumerate(bk["start"].tolist())}
    out = []
    for s, e in wanted:
        i = got.get(s)
        if i is None or bk["ledger_count"][i] == 0:
            out.append(EnergyBucket(s, e, 0, int(Flag.NO_DATA)))
            continue
        flags = int(bk["flags"][i]) | (Flag.ESTIMATED if (bk["split_start"][i] or bk["split_end"][i]) else 0)
        out.append(EnergyBucket(s, e, int(bk["energy"][i]), int(flags)))
    return out


def energy_report(asset: str, point: str, period: str, tz: str, buckets: list[EnergyBucket]) -> dict:
    """The JSON shape of ``wattline energy --format json``."""
    return {
        "asset": asset,
        "point": point,
        "period": period,
        "timezone": tz,
        "buckets": [
            {"start": timeutil.iso(b.start, tz), "end": timeutil.iso(b.end, tz),
             "energy_kwh": b.energy_kwh, "quality": b.quality}
            for b in buckets
        ],
        "total_kwh": sum(b.energy_milli_wh for b in buckets) / 1e6,
    }


def stat_buckets(telemetry: Engine, series_id: int, period: str, start_ts: int, end_ts: int,
                 tz: str) -> list[dict]:
    """min / max / avg / last / count of the readings in every ``period`` bucket
    starting in [start_ts, end_ts), for instantaneous metrics (power, soc, voltage...)."""
    if period not in B.PERIODS:
        raise ValueError(f"period must be one of {', '.join(B.PERIODS)}")
    wanted = B.bucket_range(period, start_ts, end_ts, tz)
    if period in B.FIXED_PERIODS:
        with telemetry.connect() as conn:
            bk = fixed_on_read(conn, series_id, period, wanted[0][0], wanted[-1][1], tz) if wanted else None
        stored = {} if bk is None else {
            int(st): (bk["vmin"][i], bk["vmax"][i], bk["vsum"][i], int(bk["vcount"][i]), bk["vlast"][i])
            for i, st in enumerate(bk["start"].tolist())}
    else:
        with telemetry.connect() as conn:
            rows = conn.execute(
                select(aggregates.c.bucket_start, aggregates.c.value_min, aggregates.c.value_max,
                       aggregates.c.value_sum, aggregates.c.value_count, aggregates.c.value_last)
                .where(aggregates.c.series_id == series_id, aggregates.c.period == period,
                       aggregates.c.bucket_start >= start_ts, aggregates.c.bucket_start < end_ts)).all()
        stored = {r[0]: tuple(r[1:]) for r in rows}
    out = []
    for s, e in wanted:
        vmin, vmax, vsum, count, last = stored.get(s, (None, None, None, 0, None))
        count = int(count or 0)
        out.append({
            "start": timeutil.iso(s, tz), "end": timeutil.iso(e, tz), "count": count,
            "min": float(vmin) if count else None, "max": float(vmax) if count else None,
            "avg": float(vsum) / count if count else None, "last": float(last) if count else None,
        })
    return out

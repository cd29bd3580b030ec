"""Read models shared by the CLI and the API."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from sqlalchemy import Engine, select

from wattline.domain import timeutil
from wattline.domain import buckets as B
from wattline.domain.cost import MICRO, MIXED_CURRENCY, PARTLY_UNPRICED, Tariff
from wattline.domain.quality import Flag, flag_names
from wattline.store.energy_costs import series_costs
from wattline.store.fine_buckets import fixed_on_read
from wattline.store.tables import aggregates


@dataclass
class EnergyBucket:
    start: int
    end: int
    energy_milli_wh: int
    flags: int
    # cost on read (store.energy_costs): micro-units of ``currency``; None when no
    # version prices it; ``cost_notes`` say why or what is left out
    cost_micro: int | None = None
    currency: str | None = None
    unpriced_milli_wh: int = 0
    cost_notes: tuple[str, ...] = field(default=())
    # switch-on seconds (None: no switch state known); energy of high-confidence
    # entries (milli-Wh): the rest of ``energy_milli_wh`` is estimated
    on_time_s: int | None = None
    hc_energy_milli_wh: int = 0

    @property
    def estimated_milli_wh(self) -> int:
        return self.energy_milli_wh - self.hc_energy_milli_wh

    @property
    def energy_kwh(self) -> float:
        return self.energy_milli_wh / 1e6

    @property
    def cost(self) -> float | None:
        """Currency units; exact as text below 10**9 (the float nearest micro / 10**6
        prints as that decimal)."""
        return None if self.cost_micro is None else self.cost_micro / MICRO

    @property
    def quality(self) -> list[str]:
        return flag_names(self.flags)


def energy_buckets(telemetry: Engine, series_id: int, period: str, start_ts: int, end_ts: int,
                   tz: str, *, tariff: Tariff | None = None) -> list[EnergyBucket]:
    """Every ``period`` bucket starting in [start_ts, end_ts) with its energy and
    quality; a bucket with no stored data has 0 energy and the ``no_data`` flag.

    With ``tariff`` (the series' asset's, ``store.cost_versions_repo``) each bucket
    also carries its cost, priced on read from the same ledger entries its energy
    comes from (``store.energy_costs``)."""
    if period not in B.PERIODS:
        raise ValueError(f"period must be one of {', '.join(B.PERIODS)}")
    wanted = B.bucket_range(period, start_ts, end_ts, tz)
    out = _energy(telemetry, series_id, period, wanted, tz)
    if tariff is None:
        return out
    costs = series_costs(telemetry, {int(series_id): tariff}, period, wanted, tz)
    return [replace(b, cost_micro=c.cost_micro, currency=c.currency, unpriced_milli_wh=c.unpriced_milli_wh,
                    cost_notes=c.notes) for b, c in zip(out, costs)]


def _energy(telemetry: Engine, series_id: int, period: str, wanted: list[tuple[int, int]],
            tz: str) -> list[EnergyBucket]:
    if period in B.FIXED_PERIODS:
        return _fixed(telemetry, series_id, period, wanted, tz)
    start_ts, end_ts = (wanted[0][0], wanted[-1][1]) if wanted else (0, 0)
    with telemetry.connect() as conn:
        rows = conn.execute(
            select(aggregates.c.bucket_start, aggregates.c.energy_milli_wh, aggregates.c.flags,
                   aggregates.c.split_start, aggregates.c.split_end, aggregates.c.ledger_count,
                   aggregates.c.on_time_s, aggregates.c.hc_energy_milli_wh)
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
        out.append(EnergyBucket(s, e, r[1] or 0, int(flags), on_time_s=r[6], hc_energy_milli_wh=r[7] or 0))
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
        on = int(bk["on_time"][i])
        out.append(EnergyBucket(s, e, int(bk["energy"][i]), int(flags), on_time_s=on if on >= 0 else None,
                                hc_energy_milli_wh=int(bk["hc_energy"][i])))
    return out


def cost_total(buckets: list[EnergyBucket]) -> tuple[int | None, str | None, list[str]]:
    """(cost micro-units, currency, cost notes) of a list of buckets: the sum of their
    costs; None if none is priced or they are in several currencies."""
    priced = [b for b in buckets if b.cost_micro is not None]
    notes = sorted({n for b in buckets for n in b.cost_notes if n != PARTLY_UNPRICED})
    if any(b.unpriced_milli_wh for b in buckets) and priced:
        notes.append(PARTLY_UNPRICED)
    currencies = {b.currency for b in priced}
    if len(currencies) > 1:
        return None, None, sorted(set(notes) | {MIXED_CURRENCY})
    if not priced:
        return None, None, notes
    return sum(b.cost_micro for b in priced), currencies.pop(), notes


def energy_report(asset: str, point: str, period: str, tz: str, buckets: list[EnergyBucket]) -> dict:
    """The JSON shape of ``wattline energy --format json`` and ``GET /api/energy``:
    energy (kWh) and cost per bucket and in total; ``cost`` in currency units,
    ``cost_micro`` the exact integer micro-units it is summed in."""
    total_micro, currency, notes = cost_total(buckets)
    return {
        "asset": asset,
        "point": point,
        "period": period,
        "timezone": tz,
        "buckets": [
            {"start": timeutil.iso(b.start, tz), "end": timeutil.iso(b.end, tz),
             "energy_kwh": b.energy_kwh, "quality": b.quality,
             "cost": b.cost, "cost_micro": b.cost_micro, "currency": b.currency,
             "cost_quality": list(b.cost_notes)}
            for b in buckets
        ],
        "total_kwh": sum(b.energy_milli_wh for b in buckets) / 1e6,
        "total_cost": None if total_micro is None else total_micro / MICRO,
        "total_cost_micro": total_micro,
        "currency": currency,
        "cost_quality": notes,
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

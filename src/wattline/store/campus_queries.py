"""Reads behind the campus analytics API: a classroom, its devices' energy series, and
their figures (``domain.campus.Figures``) per bucket.

Local days, months and years come from the stored ``aggregates`` rows (energy,
``on_time_s``, ``hc_energy_milli_wh``, flags); 5-minute, 15-minute and hourly buckets
are cut from the ledger on read (``fine_buckets.fixed_on_read``). Cost is priced on
read, per series, from the ledger entries of the range (``domain.cost.bucket_costs``):
a classroom's bucket costs exactly the sum of its devices' (each priced stretch is
shared over buckets with telescoping rounding), and a coarser bucket exactly the sum
of the finer ones inside it.

Units: instants UTC epoch seconds; energy milli-Wh; cost micro-units; on-time seconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
from sqlalchemy import Engine

from wattline.domain import buckets as B
from wattline.domain.campus import Figures
from wattline.domain.cost import MIXED_CURRENCY, Tariff, bucket_costs
from wattline.domain.quality import Flag
from wattline.store import cost_versions_repo, device_registry, energy_costs, fine_buckets, registry, summaries_repo
from wattline.store.cost_versions_repo import ScopeRef


@dataclass(frozen=True)
class Classroom:
    """A classroom: its group id, name and effective IANA zone (its own or its organization's)."""

    id: int
    name: str
    timezone: str


@dataclass(frozen=True)
class ClassroomDevice:
    """A device of a classroom and its energy series (None: it never reported)."""

    asset_id: int
    esp32_name: str
    device_id: str
    series_id: int | None


def organization(main_reader: Engine, organization_id: int | None) -> int | None:
    """The caller's organization, or (for a caller without one) the default organization."""
    if organization_id is not None:
        return int(organization_id)
    with main_reader.connect() as conn:
        return device_registry.organization_id(conn, registry.DEFAULT_ORG)


def classroom(main_reader: Engine, organization_id: int, name: str) -> Classroom | None:
    with main_reader.connect() as conn:
        row = device_registry.classroom(conn, organization_id, name)
    if row is None:
        return None
    return Classroom(int(row["id"]), row["name"], row["effective_timezone"] or "UTC")


def classrooms(main_reader: Engine, organization_id: int) -> list[dict]:
    """Every classroom of the organization: name, timezone (effective) and devices (count)."""
    with main_reader.connect() as conn:
        return [{"name": r["name"], "timezone": r["effective_timezone"] or "UTC", "devices": int(r["devices"])}
                for r in device_registry.classrooms(conn, organization_id)]


def classroom_devices(main_reader: Engine, telemetry: Engine, organization_id: int,
                      classroom_id: int) -> list[ClassroomDevice]:
    """The classroom's devices by controller and id, each with its energy series (its
    counter if it has one, else power: ``energy_costs.energy_series_of_assets``)."""
    with main_reader.connect() as conn:
        rows = device_registry.list_devices(conn, organization_id, classroom_id)
    by_asset = {a: s for s, a in energy_costs.energy_series_of_assets(
        telemetry, [int(r["asset_id"]) for r in rows]).items()}
    return [ClassroomDevice(int(r["asset_id"]), r["esp32_name"], r["device_id"], by_asset.get(int(r["asset_id"])))
            for r in rows]


def tariffs(main_reader: Engine, devices: Sequence[ClassroomDevice]) -> dict[int, Tariff]:
    """The tariff of each device's energy series (series id -> tariff)."""
    series = {d.series_id: d.asset_id for d in devices if d.series_id is not None}
    with main_reader.connect() as conn:
        return cost_versions_repo.tariffs_for_series(conn, series)


def currency(main_reader: Engine, classroom_id: int) -> str:
    """The organization's currency, as seen from the classroom: that of the newest cost
    version covering it, else the default."""
    with main_reader.connect() as conn:
        return cost_versions_repo.default_currency(conn, ScopeRef("group", int(classroom_id)))


# ------------------------------------------------------------------ figures per bucket


def figures(telemetry: Engine, series_tariffs: dict[int, Tariff], period: str, wanted: list[tuple[int, int]],
            tz: str) -> dict[int, list[Figures]]:
    """The figures of each series (keys of ``series_tariffs``) in each wanted bucket.

    Parameters
    ----------
    telemetry : Engine
        The telemetry database.
    series_tariffs : dict of int to Tariff
        Energy series -> its asset's tariff.
    period : str
        ``5min``, ``15min``, ``hour`` (cut from the ledger) or ``day``, ``month``,
        ``year`` (stored aggregates).
    wanted : list of (int, int)
        Consecutive buckets (start, end), UTC epoch seconds, as
        ``buckets.bucket_range(period, ..., tz)`` gives them.
    tz : str
        The classroom's IANA zone (its devices' zone).

    Returns
    -------
    dict of int to list of Figures
        One list per series, aligned with ``wanted``.
    """
    sids = sorted(int(s) for s in series_tariffs)
    if not wanted or not sids:
        return {s: [Figures() for _ in wanted] for s in sids}
    start, end = int(wanted[0][0]), int(wanted[-1][1])
    index = {int(w[0]): i for i, w in enumerate(wanted)}
    with telemetry.connect() as conn:
        if period in B.CALENDAR_PERIODS:
            energy = _stored(conn, sids, period, start, end, index)
        else:
            energy = {s: _fine(conn, s, period, start, end, tz, index) for s in sids}
        entries = summaries_repo.ledger_entries(conn, sids, start, end)
    out: dict[int, list[Figures]] = {}
    for s in sids:
        m = entries["series_id"] == s
        tf = series_tariffs[s]
        costs = bucket_costs({k: v[m] for k, v in entries.items()}, {s: tf}, tz, period, wanted)
        rows = energy[s]
        out[s] = [Figures(e, c.cost_micro or 0, c.unpriced_milli_wh, on, hc, fl,
                          mixed_currency=MIXED_CURRENCY in c.notes, tariff_in_effect=tf.in_effect_during(a, b))
                  for (e, on, hc, fl), c, (a, b) in zip(rows, costs, wanted)]
    return out


_EMPTY = (0, 0, 0, 0)


def _stored(conn, sids: list[int], period: str, start: int, end: int,
            index: dict[int, int]) -> dict[int, list[tuple[int, int, int, int]]]:
    """(energy, on-time, hc energy, flags) of each stored bucket; NULL on-time (no switch
    state known) or hc energy (no entry): 0."""
    out = {s: [_EMPTY] * len(index) for s in sids}
    rows = conn.exec_driver_sql(
        "SELECT series_id, bucket_start, energy_milli_wh, on_time_s, hc_energy_milli_wh, flags, split_start, "
        f"split_end FROM aggregates WHERE series_id IN ({', '.join(str(s) for s in sids)}) AND period = '{period}' "
        f"AND bucket_start >= {int(start)} AND bucket_start < {int(end)}").fetchall()
    for sid, bstart, energy, on, hc, flags, ss, se in rows:
        i = index.get(int(bstart))
        if i is None:  # a bucket of another zone's calendar (the classroom's zone changed)
            continue
        fl = int(flags or 0) | (int(Flag.ESTIMATED) if ss or se else 0)
        out[int(sid)][i] = (int(energy or 0), int(on or 0), int(hc or 0), fl)
    return out


def _fine(conn, sid: int, period: str, start: int, end: int, tz: str,
          index: dict[int, int]) -> list[tuple[int, int, int, int]]:
    """(energy, on-time, hc energy, flags) of each fine bucket of one series."""
    out = [_EMPTY] * len(index)
    b = fine_buckets.fixed_on_read(conn, sid, period, start, end, tz)
    n = len(b["start"])
    zeros = np.zeros(n, np.int64)
    on = np.maximum(b.get("on_time", zeros), 0)  # -1: no entry of the bucket knows its switch state
    hc = b.get("hc_energy", zeros)
    est = b["split_start"] | b["split_end"]
    for i in range(n):
        j = index.get(int(b["start"][i]))
        if j is None:
            continue
        fl = int(b["flags"][i]) | (int(Flag.ESTIMATED) if est[i] else 0)
        out[j] = (int(b["energy"][i]), int(on[i]), int(hc[i]), fl)
    return out

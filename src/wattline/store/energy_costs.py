"""Cost on read: the ledger entries of a range priced by their assets' tariffs.

Nothing priced is stored. A bucket's cost is computed from the ledger entries it
overlaps each time it is read (``domain.cost.bucket_costs``), with the versions in
the registry at that moment; so adding a version re-prices every figure it covers —
cards, charts, exports, of every period — by construction, and there is no stored
cost to get out of step, nor a re-pricing job to run or to fail half-way.
"""

from __future__ import annotations

import itertools
import threading
import weakref
from collections import OrderedDict
from dataclasses import dataclass

from sqlalchemy import Connection, Engine

from wattline.domain import buckets as B
from wattline.domain import timeutil
from wattline.domain.cost import (
    MIXED_CURRENCY, NO_COST_VERSION, PARTLY_UNPRICED, BucketCost, Tariff, bucket_costs,
)
from wattline.store import cost_versions_repo, groups_repo, summaries_repo

# a member's energy series, by preference: a metered counter, interval energy, power
_ENERGY_TYPES = ("counter", "interval_energy", "power")


def series_costs(telemetry: Engine | Connection, tariffs: dict[int, Tariff], period: str,
                 wanted: list[tuple[int, int]], tz: str) -> list[BucketCost]:
    """Cost of each wanted bucket (``buckets.bucket_range(period, ..., tz)``) summed
    over the series of ``tariffs`` (series id -> its asset's tariff)."""
    if not wanted:
        return []
    start, end = wanted[0][0], wanted[-1][1]
    if isinstance(telemetry, Connection):
        entries = summaries_repo.ledger_entries(telemetry, sorted(tariffs), start, end)
    else:
        with telemetry.connect() as conn:
            entries = summaries_repo.ledger_entries(conn, sorted(tariffs), start, end)
    return bucket_costs(entries, tariffs, tz, period, wanted)


def energy_series_of_assets(telemetry: Engine, asset_ids: list[int]) -> dict[int, int]:
    """One energy series per asset (series id -> asset id): its counter if it has one
    (``energy_total`` first), else interval energy, else power — never two, so a
    member's energy is not counted twice."""
    with telemetry.connect() as conn:
        rows = summaries_repo.series_of_assets(conn, asset_ids)
    best: dict[int, tuple] = {}
    for aid, key, sid, _tz, _vid, mt in rows:
        if mt not in _ENERGY_TYPES:
            continue
        rank = (_ENERGY_TYPES.index(mt), key != "energy_total", sid)
        if aid not in best or rank < best[aid][0]:
            best[aid] = (rank, sid)
    return {sid: aid for aid, (_rank, sid) in best.items()}


def group_costs(main_reader: Engine, telemetry: Engine, group_id: int, period: str, start_ts: int,
                end_ts: int) -> tuple[str, list[BucketCost]] | None:
    """A group's (classroom's, work order's) cost per ``period`` of its own zone over
    [start_ts, end_ts): the sum of its members' costs, each member priced by its own
    tariff. Returns (the group's zone, buckets), or None if there is no such group."""
    with main_reader.connect() as mconn:
        g = groups_repo.group(mconn, group_id)
        if g is None:
            return None
        series = energy_series_of_assets(telemetry, g.member_ids)
        tariffs = cost_versions_repo.tariffs_for_series(mconn, series)
    wanted = B.bucket_range(period, start_ts, end_ts, g.timezone)
    return g.timezone, series_costs(telemetry, tariffs, period, wanted, g.timezone)


# ------------------------------------------------------------------ plants and work orders
#
# A plant's energy (its summary, its daily bars, its work orders' bars) comes from one
# series: ``energy_total`` if it has one, else ``power`` (the roll-up stage's rule,
# ``pipeline.rollup.ENERGY_KEYS``). Its cost is priced from the same series' ledger.

PLANT_ENERGY_KEYS = ("energy_total", "power")


def plant_energy_series(telemetry: Engine, asset_ids: list[int]) -> dict[int, tuple[int, str]]:
    """asset id -> (its energy series id, the series' zone), by :data:`PLANT_ENERGY_KEYS`."""
    with telemetry.connect() as conn:
        rows = summaries_repo.series_of_assets(conn, asset_ids)
    found: dict[int, dict[str, tuple[int, str]]] = {}
    for aid, key, sid, tz, _vid, _mt in rows:
        found.setdefault(aid, {})[key] = (sid, tz)
    return {aid: next(pts[k] for k in PLANT_ENERGY_KEYS if k in pts) for aid, pts in found.items()
            if any(k in pts for k in PLANT_ENERGY_KEYS)}


# what the pipeline rewrites in a month's row whenever an entry of the month changes
_FINGERPRINT = ("bucket_start", "bucket_end", "energy_milli_wh", "ledger_count", "flags", "split_start",
                "split_end", "value_count", "value_sum", "value_min", "value_max", "value_last", "last_ts",
                "on_time_s", "hc_energy_milli_wh")


def fingerprints(conn: Connection, series_ids: list[int], period: str, start_ts: int | None = None,
                 end_ts: int | None = None) -> dict[int, list[tuple]]:
    """Stored ``period`` ('day' or 'month') rows of each series overlapping
    [start_ts, end_ts) (default: all), oldest first: tuples of :data:`_FINGERPRINT`
    (bucket_start, bucket_end in UTC epoch s, energy_milli_wh in milli-Wh, ...)."""
    if not series_ids:
        return {}
    where = ""
    if start_ts is not None:  # the lower bound on bucket_start keeps it a range of the key
        longest = 26 * 3600 if period == "day" else 32 * 86400
        where = (f" AND bucket_start > {int(start_ts) - longest} AND bucket_start < {int(end_ts)}"
                 f" AND bucket_end > {int(start_ts)}")
    rows = conn.exec_driver_sql(
        f"SELECT series_id, {', '.join(_FINGERPRINT)} FROM aggregates "
        f"WHERE series_id IN ({', '.join(str(int(s)) for s in series_ids)}) AND period = '{period}'{where} "
        "ORDER BY series_id, bucket_start").all()
    out: dict[int, list[tuple]] = {}
    for r in rows:
        out.setdefault(int(r[0]), []).append(tuple(r[1:]))
    return out


def unpriced(tf: Tariff) -> bool:
    """True if no version can ever price an asset with this tariff."""
    return all(v is None for v in tf.versions)


def combine(buckets: list[BucketCost], start: int, end: int) -> BucketCost:
    """Several buckets' costs as one figure over [start, end) (UTC epoch s): the sum of
    the priced ones in micro-units (exact), None when none is priced (note
    ``no_cost_version``) or when they are in several currencies (``mixed_currency``);
    ``partly_unpriced`` when some energy has no version but some is priced. A priced
    bucket of cost 0 does not count as a currency of its own (nothing was charged)."""
    priced = [b for b in buckets if b.cost_micro is not None]
    unpriced_mwh = sum(b.unpriced_milli_wh for b in buckets)
    if any(MIXED_CURRENCY in b.notes for b in buckets):
        return BucketCost(start, end, None, None, unpriced_mwh, (MIXED_CURRENCY,))
    if not priced:
        return BucketCost(start, end, None, None, unpriced_mwh, (NO_COST_VERSION,))
    charged = {b.currency for b in priced if b.cost_micro}
    if len(charged) > 1:
        return BucketCost(start, end, None, None, unpriced_mwh, (MIXED_CURRENCY,))
    currency = charged.pop() if charged else priced[0].currency
    notes = (PARTLY_UNPRICED,) if unpriced_mwh else ()
    return BucketCost(start, end, sum(b.cost_micro for b in priced), currency, unpriced_mwh, notes)


def _no_version(wanted: list[tuple[int, int]]) -> list[BucketCost]:
    return [BucketCost(s, e, None, None, 0, (NO_COST_VERSION,)) for s, e in wanted]


# Costs of days and months are memoised per telemetry database, keyed by the series and
# their tariffs (every version that can price them), the zone, the bucket and the stored
# aggregate rows of the series overlapping it (energy, entry count, reading statistics,
# flags...), which the pipeline rewrites whenever an entry in them changes: a new version
# or late data makes a new key, so a figure is never served stale, and an unchanged
# closed day or month is not re-read and re-priced on every request (a plant's
# lifetime is all its months).
_MEMO: "weakref.WeakKeyDictionary[Engine, OrderedDict]" = weakref.WeakKeyDictionary()
_MEMO_LOCK = threading.Lock()
_TARIFF_SEQ = itertools.count(1)
MEMO_SIZE = 100_000  # bucket costs kept per database (a few hundred bytes each)


def _memo(telemetry: Engine) -> OrderedDict:
    with _MEMO_LOCK:
        m = _MEMO.get(telemetry)
        if m is None:
            m = _MEMO[telemetry] = OrderedDict()
        return m


_TARIFF_IDS: dict[tuple, int] = {}  # tariffs -> a small id for memo keys (hashed once per read, not per bucket)


def _tariff_id(tkey: tuple) -> int:
    with _MEMO_LOCK:
        if len(_TARIFF_IDS) > 10_000:  # versions changed many times: start over (ids stay unique)
            _TARIFF_IDS.clear()
        tid = _TARIFF_IDS.get(tkey)
        if tid is None:
            tid = _TARIFF_IDS[tkey] = next(_TARIFF_SEQ)
        return tid


def memoised_costs(telemetry: Engine, conn: Connection, tariffs: dict[int, Tariff], tz: str, period: str,
                   wanted: list[tuple[int, int]], prints: list[tuple]) -> list[BucketCost]:
    """``bucket_costs`` of each wanted bucket, from the memo when the bucket's
    fingerprint (``prints[i]``: the stored rows of the series overlapping it) and the
    tariffs are unchanged; the others are priced from the ledger, in one read."""
    memo = _memo(telemetry)
    tkey = _tariff_id(tuple(sorted(tariffs.items())))
    keys = [(tkey, tz, period, w, p) for w, p in zip(wanted, prints, strict=True)]
    with _MEMO_LOCK:
        got = {k: memo[k] for k in keys if k in memo}
        for k in got:
            memo.move_to_end(k)
    missing = [w for w, k in zip(wanted, keys) if k not in got]
    if missing:
        entries = summaries_repo.ledger_entries(conn, sorted(tariffs), missing[0][0], missing[-1][1])
        priced = dict(zip(missing, bucket_costs(entries, tariffs, tz, period, missing)))
        with _MEMO_LOCK:
            for w, k in zip(wanted, keys):
                if k not in got:
                    memo[k] = got[k] = priced[w]
            while len(memo) > MEMO_SIZE:
                memo.popitem(last=False)
    return [got[k] for k in keys]


def _overlapping(rows: dict[int, list[tuple]], wanted: list[tuple[int, int]]) -> list[tuple]:
    """For each wanted bucket, the stored rows (of any series) overlapping it."""
    out = []
    for s, e in wanted:
        out.append(tuple((sid, r) for sid in sorted(rows) for r in rows[sid] if r[0] < e and r[1] > s))
    return out


@dataclass(frozen=True)
class PlantPricing:
    """What prices some plants: ``series`` plant id -> (its energy series id, zone),
    ``tariffs`` series id -> its plant's tariff."""

    series: dict[int, tuple[int, str]]
    tariffs: dict[int, Tariff]


def plant_pricing(main_reader: Engine, telemetry: Engine, plant_ids: list[int]) -> PlantPricing:
    """The energy series (:func:`plant_energy_series`) and tariffs of ``plant_ids``."""
    series = plant_energy_series(telemetry, list(plant_ids))
    with main_reader.connect() as mconn:
        tariffs = cost_versions_repo.tariffs_for_series(mconn, {sid: aid for aid, (sid, _tz) in series.items()})
    return PlantPricing(series, tariffs)


def summary_costs(main_reader: Engine, telemetry: Engine, anchors: dict[int, int],
                  pricing: PlantPricing | None = None) -> dict[int, dict[str, BucketCost]]:
    """Cost of each plant's summary periods, priced on read from its energy series' ledger.

    Parameters
    ----------
    main_reader, telemetry : Engine
        The registry (read-only) and the telemetry database.
    anchors : dict of int to int
        Plant id -> the instant (UTC epoch s) whose local day, month and year the
        plant's summary energies are of (the summary's ``updated_at``).

    Returns
    -------
    dict
        Plant id -> {``day``, ``month``, ``year``, ``lifetime``: BucketCost}: the local
        day, month and year (plant's zone) containing the anchor, and the whole ledger.
        The year is the sum of its months and the lifetime of every month, exactly as
        ``bucket_costs`` over the year would give (a stretch's shares telescope). A plant
        without an energy series is absent. ``pricing``: :func:`plant_pricing` of (at
        least) these plants, if the caller has it.
    """
    pricing = pricing or plant_pricing(main_reader, telemetry, list(anchors))
    series = {aid: v for aid, v in pricing.series.items() if aid in anchors}
    tariffs = pricing.tariffs
    out: dict[int, dict[str, BucketCost]] = {}
    days = {aid: timeutil.day_bounds(timeutil.local_date(int(anchors[aid]), tz), tz)
            for aid, (_sid, tz) in series.items()}
    if not days:
        return out
    with telemetry.connect() as conn:
        sids = [sid for sid, _ in series.values()]
        month_rows = fingerprints(conn, sids, "month")
        day_rows = fingerprints(conn, sids, "day", min(d[0] for d in days.values()), max(d[1] for d in days.values()))
        for aid, (sid, tz) in series.items():
            d = timeutil.local_date(int(anchors[aid]), tz)
            day = days[aid]
            month = timeutil.month_bounds(d.year, d.month, tz)
            year = timeutil.year_bounds(d.year, tz)
            tf = tariffs.get(sid, Tariff())
            (day_cost,) = memoised_costs(telemetry, conn, {sid: tf}, tz, "day", [day],
                                         _overlapping({sid: day_rows.get(sid, [])}, [day]))
            rows = month_rows.get(sid, [])
            if unpriced(tf):  # nothing to price: each month is its stored energy, unpriced
                costs = [BucketCost(int(r[0]), int(r[1]), None, None, int(r[2] or 0), (NO_COST_VERSION,))
                         for r in rows]
            else:
                costs = memoised_costs(telemetry, conn, {sid: tf}, tz, "month",
                                       [(int(r[0]), int(r[1])) for r in rows], [(r,) for r in rows])
            in_month = [c for c in costs if c.start == month[0]]
            in_year = [c for c in costs if year[0] <= c.start < year[1]]
            empty = {"series_id": [], "start_ts": [], "end_ts": [], "delta": []}
            month_cost = in_month[0] if in_month else bucket_costs(empty, {sid: tf}, tz, "month", [month])[0]
            year_cost = (combine(in_year, *year) if in_year
                         else bucket_costs(empty, {sid: tf}, tz, "year", [year])[0])
            life = (combine(costs, costs[0].start, costs[-1].end) if costs
                    else BucketCost(year[0], year[1], None, None, 0, (NO_COST_VERSION,)))
            out[aid] = {"day": day_cost, "month": month_cost, "year": year_cost, "lifetime": life}
    return out


def plant_day_costs(main_reader: Engine, telemetry: Engine, plant_id: int,
                    wanted: list[tuple[int, int]]) -> list[BucketCost]:
    """Cost of each wanted local day (``timeutil.day_bounds`` in the plant's zone) of
    a plant's energy series: its daily bars."""
    series = plant_energy_series(telemetry, [plant_id])
    if plant_id not in series:
        return _no_version(wanted)
    sid, tz = series[plant_id]
    with main_reader.connect() as mconn:
        tf = cost_versions_repo.tariff_for_asset(mconn, plant_id)
    if unpriced(tf) or not wanted:
        return _no_version(wanted)
    return _day_costs(telemetry, {sid: tf}, tz, wanted)


def _day_costs(telemetry: Engine, tariffs: dict[int, Tariff], tz: str, wanted: list[tuple[int, int]]) -> list[BucketCost]:
    with telemetry.connect() as conn:
        rows = fingerprints(conn, sorted(tariffs), "day", wanted[0][0], wanted[-1][1])
        return memoised_costs(telemetry, conn, tariffs, tz, "day", wanted, _overlapping(rows, wanted))


def group_day_costs(main_reader: Engine, telemetry: Engine, group_id: int, wanted: list[tuple[int, int]],
                    *, tz: str | None = None, pricing: PlantPricing | None = None) -> list[BucketCost]:
    """Cost of each wanted day of a work order's zone: the sum over its member plants,
    each priced by its own tariff, from the same series the group's bars' energy
    comes from (:data:`PLANT_ENERGY_KEYS`). ``tz`` (the group's zone) and ``pricing``
    (:func:`plant_pricing` of its members), if the caller has them, save the look-ups."""
    if tz is None or pricing is None:
        with main_reader.connect() as mconn:
            g = groups_repo.group(mconn, group_id)
        if g is None:
            return _no_version(wanted)
        tz, pricing = g.timezone, plant_pricing(main_reader, telemetry, g.member_ids)
    series = pricing.series
    tariffs = {sid: pricing.tariffs[sid] for sid, _tz in series.values()
               if sid in pricing.tariffs and not unpriced(pricing.tariffs[sid])}
    if not tariffs or not wanted:
        return _no_version(wanted)
    costs = _day_costs(telemetry, tariffs, tz, wanted)
    if len(tariffs) < len(series):  # members with no version at all: their energy is unpriced
        costs = _with_unpriced_members(telemetry, costs, [s for s, _ in series.values() if s not in tariffs], tz)
    return costs


def _with_unpriced_members(telemetry: Engine, costs: list[BucketCost], sids: list[int], tz: str) -> list[BucketCost]:
    """``costs`` with the energy of members no version prices added as unpriced."""
    wanted = [(c.start, c.end) for c in costs]
    rest = _day_costs(telemetry, {s: Tariff() for s in sids}, tz, wanted)  # every stretch unpriced
    return [combine([c, r], c.start, c.end) for c, r in zip(costs, rest)]

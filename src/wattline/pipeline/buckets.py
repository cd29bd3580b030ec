"""Bucket arithmetic: ledger entries -> buckets of every period.

A ledger delta is split over the buckets it overlaps in proportion to time (rule 2)
with a telescoping rounding: the piece in [lo, hi) is rint(d * frac(hi)) -
rint(d * frac(lo)), frac being the elapsed share of the entry. Pieces therefore sum to
the delta exactly, and a bucket's piece equals the sum of the pieces of any finer
buckets inside it — which is why local days can be cut directly at midnights
(``day_buckets``) while 5-minute, 15-minute and hourly buckets are cut on a 5-minute
grid on read (``split_ledger``, ``compose``), and all of them agree with each other and
with the ledger to the milliwatt-hour. Local midnight is a multiple of 15 minutes in
UTC in every current zone, so days are unions of 5-minute buckets.

A bucket table is a dict of equal-length numpy columns (see ``COLUMNS``), sorted
by (series_id, start).
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Callable

import numpy as np
import pandas as pd

from wattline.domain import timeutil

BASE_S = 300
FIXED_PERIODS = {"5min": 300, "15min": 900, "hour": 3600}
CALENDAR_PERIODS = ("day", "month", "year")
PERIODS = ("5min", "15min", "hour", "day", "month", "year")

COLUMNS = (
    "series_id", "start", "end", "energy", "ledger_count", "vmin", "vmax", "vsum",
    "vcount", "vlast", "last_ts", "flags", "split_start", "split_end",
)

Buckets = dict[str, np.ndarray]


def empty() -> Buckets:
    return empty_of(0)


def _dtype(col: str):
    if col in ("vmin", "vmax", "vsum", "vlast"):
        return np.float64
    if col in ("split_start", "split_end"):
        return np.bool_
    return np.int64


def _order(major: np.ndarray, minor: np.ndarray) -> np.ndarray:
    """Stable order by (major, minor). Both usually fit one int64 key, and a stable
    sort of that is adaptive (fast on the nearly sorted data we have); else lexsort."""
    if len(major) == 0:
        return np.zeros(0, np.int64)
    a_lo, b_lo = int(major.min()), int(minor.min())
    a_bits = (int(major.max()) - a_lo).bit_length()
    b_bits = (int(minor.max()) - b_lo).bit_length()
    if a_bits + b_bits > 62:
        return np.lexsort((minor, major))
    key = ((major - a_lo) << b_bits) | (minor - b_lo)
    return np.argsort(key, kind="stable")


def _group_starts(*keys: np.ndarray) -> np.ndarray:
    """Indices where a run of equal (key...) tuples starts, for sorted keys."""
    n = len(keys[0])
    if n == 0:
        return np.zeros(0, np.int64)
    change = np.zeros(n, bool)
    change[0] = True
    for k in keys:
        change[1:] |= k[1:] != k[:-1]
    return np.flatnonzero(change)


def _piece_energy(s: np.ndarray, e: np.ndarray, delta: np.ndarray, b_start: np.ndarray,
                  b_end: np.ndarray) -> np.ndarray:
    """The part (milli-Wh) of each entry [s, e) with ``delta`` that falls in its bucket
    [b_start, b_end): rint(delta * elapsed share at the piece's end) minus the same at
    its start, so an entry's pieces telescope to its delta exactly."""
    lo, hi = np.maximum(s, b_start), np.minimum(e, b_end)
    span = (e - s).astype(np.float64)
    d = delta.astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        frac_hi = np.where(span > 0, (hi - s).astype(np.float64) / span, 1.0)
        frac_lo = np.where(span > 0, (lo - s).astype(np.float64) / span, 0.0)
    return (np.rint(d * frac_hi) - np.rint(d * frac_lo)).astype(np.int64)


def split_ledger(series_id, start_ts, end_ts, delta, flags):
    """Pieces of each ledger entry per 5-minute bucket.

    Returns (series_id, bucket_start, energy, flags, split_start, split_end) columns,
    one row per (entry, bucket) overlap. ``split_start``: the entry began before the
    bucket; ``split_end``: it ended after it.
    """
    s = np.asarray(start_ts, np.int64)
    e = np.asarray(end_ts, np.int64)
    first = (s // BASE_S) * BASE_S
    last = ((e - 1) // BASE_S) * BASE_S  # bucket holding the entry's last second
    count = np.maximum((last - first) // BASE_S + 1, 1)
    idx = np.repeat(np.arange(len(s)), count)
    offset = np.arange(len(idx)) - np.repeat(np.cumsum(count) - count, count)
    b_start = first[idx] + offset * BASE_S
    energy = _piece_energy(s[idx], e[idx], np.asarray(delta, np.int64)[idx], b_start, b_start + BASE_S)
    split_start = s[idx] < b_start
    split_end = e[idx] > b_start + BASE_S
    return (
        np.asarray(series_id, np.int64)[idx], b_start, energy,
        np.asarray(flags, np.int64)[idx], split_start, split_end,
    )


def base_buckets(ledger_cols: dict, reading_cols: dict) -> Buckets:
    """5-minute buckets from ledger entries and readings of many series.

    ``ledger_cols``: series_id, start_ts, end_ts, delta, flags.
    ``reading_cols``: series_id, ts, value.
    """
    sid, bst, en, fl, ss, se = split_ledger(
        ledger_cols["series_id"], ledger_cols["start_ts"], ledger_cols["end_ts"],
        ledger_cols["delta"], ledger_cols["flags"],
    )
    r_ts = np.asarray(reading_cols["ts"], np.int64)
    r_start = (r_ts // BASE_S) * BASE_S
    return _assemble((sid, bst, bst + BASE_S, en, fl, ss, se), reading_cols, r_start, r_start + BASE_S)


def day_buckets(ledger_cols: dict, reading_cols: dict, series_tz: dict[int, str]) -> Buckets:
    """Local-day buckets straight from ledger entries and readings.

    A delta is cut only at the local midnights it spans, with the same telescoping
    rounding as :func:`split_ledger`, so a day equals the sum of its 5-minute pieces
    exactly (the pieces' rounding telescopes to the day's own boundaries)."""
    sid = np.asarray(ledger_cols["series_id"], np.int64)
    s = np.asarray(ledger_cols["start_ts"], np.int64)
    e = np.asarray(ledger_cols["end_ts"], np.int64)
    d = np.asarray(ledger_cols["delta"], np.int64)
    fl = np.asarray(ledger_cols["flags"], np.int64)
    ds, de = calendar_parents(s, series_tz, sid, "day")
    cross = np.flatnonzero(e > de)  # entries running past the end of the day they start in
    whole = np.flatnonzero(e <= de)
    # one piece per day an entry overlaps: the day it starts in, then each following day
    idx, day_start, day_end = [whole, cross], [ds[whole], ds[cross]], [de[whole], de[cross]]
    if len(cross):
        ns, ne = calendar_parents(de[cross], series_tz, sid[cross], "day")
        idx.append(cross)
        day_start.append(ns)
        day_end.append(ne)
        far = e[cross] > ne
        for i, a in zip(cross[far].tolist(), ne[far].tolist()):  # a gap of days: rare
            edges = _edges(series_tz[int(sid[i])], "day", a, int(e[i]) - 1, limit=None)
            idx.append(np.full(len(edges) - 1, i))
            day_start.append(edges[:-1])
            day_end.append(edges[1:])
    idx, day_start, day_end = np.concatenate(idx), np.concatenate(day_start), np.concatenate(day_end)
    energy = _piece_energy(s[idx], e[idx], d[idx], day_start, day_end)
    pieces = (sid[idx], day_start, day_end, energy, fl[idx], s[idx] < day_start, e[idx] > day_end)
    r_sid = np.asarray(reading_cols["series_id"], np.int64)
    r_ts = np.asarray(reading_cols["ts"], np.int64)
    r_day, r_end = calendar_parents(r_ts, series_tz, r_sid, "day")
    return _assemble(pieces, reading_cols, r_day, r_end)


def _assemble(pieces, reading_cols: dict, reading_start: np.ndarray, reading_end: np.ndarray) -> Buckets:
    """Buckets from ledger pieces (series, bucket start, bucket end, energy, flags,
    split_start, split_end) and readings with their bucket (start, end)."""
    sid, bst, bend, en, fl, ss, se = pieces
    o = _order(sid, bst)
    sid, bst, bend, en, fl, ss, se = sid[o], bst[o], bend[o], en[o], fl[o], ss[o], se[o]
    g = _group_starts(sid, bst)
    r_sid = np.asarray(reading_cols["series_id"], np.int64)
    r_ts = np.asarray(reading_cols["ts"], np.int64)
    r_v = np.asarray(reading_cols["value"], np.float64)
    o = _order(r_sid, r_ts)
    r_sid, r_ts, r_v = r_sid[o], r_ts[o], r_v[o]
    r_start, r_end = np.asarray(reading_start, np.int64)[o], np.asarray(reading_end, np.int64)[o]
    rg = _group_starts(r_sid, r_start)

    # the union of the buckets holding ledger pieces and those holding readings
    k_sid = np.concatenate([sid[g], r_sid[rg]])
    k_start = np.concatenate([bst[g], r_start[rg]])
    order = _order(k_sid, k_start)
    new_key = np.zeros(len(order), bool)
    new_key[_group_starts(k_sid[order], k_start[order])] = True
    slot = np.empty(len(order), np.int64)
    slot[order] = np.cumsum(new_key) - 1
    at_l, at_r = slot[:len(g)], slot[len(g):]
    out = empty_of(int(new_key.sum()))
    out["series_id"] = k_sid[order][new_key]
    out["start"] = k_start[order][new_key]
    out["end"][at_l], out["end"][at_r] = bend[g], r_end[rg]
    if len(g):
        out["energy"][at_l] = np.add.reduceat(en, g)
        out["ledger_count"][at_l] = np.diff(np.append(g, len(sid)))
        out["flags"][at_l] = np.bitwise_or.reduceat(fl, g)
        out["split_start"][at_l] = np.logical_or.reduceat(ss, g)
        out["split_end"][at_l] = np.logical_or.reduceat(se, g)
    if len(rg):
        last = np.append(rg[1:], len(r_sid)) - 1
        out["vmin"][at_r] = np.minimum.reduceat(r_v, rg)
        out["vmax"][at_r] = np.maximum.reduceat(r_v, rg)
        out["vsum"][at_r] = np.add.reduceat(r_v, rg)
        out["vcount"][at_r] = np.diff(np.append(rg, len(r_sid)))
        out["vlast"][at_r] = r_v[last]
        out["last_ts"][at_r] = r_ts[last]
    return out


def empty_of(n: int) -> Buckets:
    """``n`` buckets with nothing in them: no energy, no readings (NaN values, last_ts -1)."""
    out = {c: np.zeros(n, _dtype(c)) for c in COLUMNS}
    for c in ("vmin", "vmax", "vsum", "vlast"):
        out[c][:] = np.nan
    out["last_ts"][:] = -1
    return out


def compose(children: Buckets, parent_start: np.ndarray, parent_end: np.ndarray) -> Buckets:
    """Coarser buckets from children sorted by (series_id, start).

    ``parent_start[i]`` / ``parent_end[i]`` is the parent bucket of child i.
    """
    n = len(children["series_id"])
    if n == 0:
        return empty()
    sid = children["series_id"]
    order = np.lexsort((children["start"], parent_start, sid))
    ch = {k: v[order] for k, v in children.items()}
    ps, pe = parent_start[order], parent_end[order]
    g = _group_starts(ch["series_id"], ps)
    g_end = np.append(g[1:], n) - 1
    out: Buckets = {"series_id": ch["series_id"][g], "start": ps[g], "end": pe[g]}
    out["energy"] = np.add.reduceat(ch["energy"], g)
    out["ledger_count"] = np.add.reduceat(ch["ledger_count"], g)
    out["vmin"] = np.fmin.reduceat(ch["vmin"], g)
    out["vmax"] = np.fmax.reduceat(ch["vmax"], g)
    out["vsum"] = np.add.reduceat(np.nan_to_num(ch["vsum"]), g)
    out["vcount"] = np.add.reduceat(ch["vcount"], g)
    has = ch["vcount"] > 0
    last_idx = np.maximum.reduceat(np.where(has, np.arange(n), -1), g)
    out["vlast"] = np.where(last_idx >= 0, ch["vlast"][np.maximum(last_idx, 0)], np.nan)
    out["last_ts"] = np.where(last_idx >= 0, ch["last_ts"][np.maximum(last_idx, 0)], -1)
    out["vsum"] = np.where(out["vcount"] > 0, out["vsum"], np.nan)
    out["flags"] = np.bitwise_or.reduceat(ch["flags"], g)
    # only a split at the parent's own boundary makes the parent estimated
    out["split_start"] = ch["split_start"][g] & (ch["start"][g] == ps[g])
    out["split_end"] = ch["split_end"][g_end] & (ch["end"][g_end] == pe[g_end])
    return out


def fixed_parents(starts: np.ndarray, width_s: int) -> tuple[np.ndarray, np.ndarray]:
    ps = (starts // width_s) * width_s
    return ps, ps + width_s


_UNIT = {"day": "datetime64[D]", "month": "datetime64[M]", "year": "datetime64[Y]"}


def calendar_parents(
    starts: np.ndarray, series_tz: dict[int, str], series_id: np.ndarray, period: str
) -> tuple[np.ndarray, np.ndarray]:
    """Local day / month / year bucket (start, end) of each child start, per series zone."""
    ps = np.empty(len(starts), np.int64)
    pe = np.empty(len(starts), np.int64)
    if not len(starts):
        return ps, pe
    zones = sorted(set(series_tz.values()))
    if len(zones) > 1:
        ids, at = np.unique(series_id, return_inverse=True)
        zones = sorted({series_tz[int(s)] for s in ids.tolist()})
        zone_code = np.array([zones.index(series_tz[int(s)]) for s in ids.tolist()], np.int64)[at]
    for code, tz in enumerate(zones):
        mask = zone_code == code if len(zones) > 1 else slice(None)
        t = starts[mask]
        edges = _edges(tz, period, int(t.min()), int(t.max()))
        if edges is None:  # a range of many thousands of buckets: convert each instant
            ps[mask], pe[mask] = _parents_by_conversion(t, tz, period)
            continue
        i = np.searchsorted(edges, t, side="right") - 1
        ps[mask], pe[mask] = edges[i], edges[i + 1]
    return ps, pe


MAX_EDGES = 20_000


def _edges(tz: str, period: str, lo: int, hi: int, limit: int | None = MAX_EDGES) -> np.ndarray | None:
    """Boundaries of the consecutive buckets from the one holding ``lo`` to the one
    holding ``hi`` (so the last edge is after ``hi``); None if there would be more
    than ``limit``."""
    key = _date_key(timeutil.local_date(lo, tz), period)
    out = [_bounds(key, tz, period)[0]]
    while out[-1] <= hi:
        if limit is not None and len(out) > limit:
            return None
        out.append(_bounds(key, tz, period)[1])
        key = _next_key(key, period)
    return np.array(out, np.int64)


def _parents_by_conversion(t: np.ndarray, tz: str, period: str) -> tuple[np.ndarray, np.ndarray]:
    # local wall-clock time, truncated to the calendar unit: one key per bucket
    wall = pd.to_datetime(t, unit="s", utc=True).tz_convert(tz).tz_localize(None)
    keys, inv = np.unique(wall.to_numpy().astype(_UNIT[period]), return_inverse=True)
    bounds = np.array([_bounds(_key(k, period), tz, period) for k in keys], np.int64)
    return bounds[inv, 0], bounds[inv, 1]


def _key(value: np.datetime64, period: str) -> tuple:
    return _date_key(value.astype("datetime64[D]").item(), period)


def _date_key(d: date, period: str) -> tuple:
    """The calendar bucket of local date ``d``: (y, m, d), (y, m) or (y,)."""
    return (d.year, d.month, d.day) if period == "day" else (d.year, d.month) if period == "month" else (d.year,)


def _bounds(key: tuple, tz: str, period: str) -> tuple[int, int]:
    if period == "day":
        return timeutil.day_bounds(date(*key), tz)
    if period == "month":
        return timeutil.month_bounds(key[0], key[1], tz)
    return timeutil.year_bounds(key[0], tz)


def bucket_range(period: str, start_ts: int, end_ts: int, tz: str) -> list[tuple[int, int]]:
    """Every bucket of ``period`` whose start lies in [start_ts, end_ts), in zone ``tz``."""
    if period in FIXED_PERIODS:
        w = FIXED_PERIODS[period]
        first = -(-start_ts // w) * w
        return [(t, t + w) for t in range(first, end_ts, w)]
    if end_ts <= start_ts:
        return []
    edges = _edges(tz, period, start_ts, end_ts - 1, limit=None).tolist()
    return [(a, b) for a, b in zip(edges, edges[1:]) if a >= start_ts]


def _next_key(key: tuple, period: str) -> tuple:
    if period == "day":
        n = date(*key) + timedelta(days=1)
        return (n.year, n.month, n.day)
    if period == "month":
        return (key[0] + 1, 1) if key[1] == 12 else (key[0], key[1] + 1)
    return (key[0] + 1,)


ParentFn = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


"""Bucket arithmetic: ledger entries -> buckets of every period.

A ledger delta is split over the buckets it overlaps in proportion to time (rule 2)
with a telescoping rounding: the piece in [lo, hi) is rint(d * frac(hi)) -
rint(d * frac(lo)), frac being the elapsed share of the entry (``piece_energy``).
Pieces therefore sum to the delta exactly, and a bucket's piece equals the sum of the
pieces of any finer buckets inside it — which is why local days can be cut directly
at midnights (``day_buckets``) while 5-minute, 15-minute and hourly buckets are cut on
the local 5-minute grid on read (``split_on_grid``, ``base_buckets``) and composed
(``compose``), and all of them agree with each other and with the ledger to the
milliwatt-hour. Every bucket follows the series' wall clock (``wallclock``): the
edges of a coarser period are edges of every finer one, local midnight included, so
days are unions of hours, hours of 15-minute and those of 5-minute buckets, in every
zone (Asia/Kolkata's hours run from :00 to :00 IST, not :30 to :30).

Units: instants are UTC epoch seconds (int64), energies milli-Wh (int64).
A bucket table is a dict of equal-length numpy columns (see ``COLUMNS``), sorted
by (series_id, start).
"""

from __future__ import annotations

from datetime import date, timedelta
import numpy as np
import pandas as pd

from wattline.domain import timeutil, wallclock
from wattline.domain.quality import LOW_QUALITY

FIXED_PERIODS = {"5min": 300, "15min": 900, "hour": 3600}
CALENDAR_PERIODS = ("day", "month", "year")
PERIODS = ("5min", "15min", "hour", "day", "month", "year")

COLUMNS = (
    "series_id", "start", "end", "energy", "ledger_count", "vmin", "vmax", "vsum",
    "vcount", "vlast", "last_ts", "flags", "split_start", "split_end", "on_time", "hc_energy",
)
# on_time: switch-on seconds (-1: no entry of the bucket knows its switch state);
# hc_energy: the energy (milli-Wh) of high-confidence entries, those without a
# ``quality.LOW_QUALITY`` flag; the rest of ``energy`` is estimated.

Buckets = dict[str, np.ndarray]


def _entry_on_time(ledger_cols: dict, n: int) -> np.ndarray:
    """Each entry's switch-on seconds, -1 where unknown (no ``on_time`` column: all unknown)."""
    on = ledger_cols.get("on_time")
    return np.full(n, -1, np.int64) if on is None else np.asarray(on, np.int64)


def _quality_pieces(s, e, on_time, flags, energy, b_start, b_end):
    """(on-time piece, high-confidence energy piece) of each (entry, bucket) piece:
    on-time shared by time with the same telescoping rounding as energy (an entry is
    wholly on or off, so an on piece is exactly its overlap), -1 where unknown."""
    on = np.where(on_time >= 0, piece_energy(s, e, np.maximum(on_time, 0), b_start, b_end), -1)
    hc = np.where((flags & int(LOW_QUALITY)) == 0, energy, 0)
    return on.astype(np.int64), hc.astype(np.int64)


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


def piece_energy(s: np.ndarray, e: np.ndarray, delta: np.ndarray, b_start: np.ndarray,
                 b_end: np.ndarray) -> np.ndarray:
    """The part of each ledger entry that falls in a bucket, by share of time.

    Parameters
    ----------
    s, e : numpy.ndarray of int64
        Start and end of each entry [s, e), UTC epoch seconds.
    delta : numpy.ndarray of int64
        Energy of each entry, milli-Wh.
    b_start, b_end : numpy.ndarray of int64
        The bucket [b_start, b_end) each entry is cut to, UTC epoch seconds.

    Returns
    -------
    numpy.ndarray of int64
        Energy of each piece, milli-Wh: rint(delta * elapsed share at the piece's
        end) minus the same at its start, so the pieces of an entry telescope to its
        delta exactly, whatever buckets they are cut at.
    """
    lo, hi = np.maximum(s, b_start), np.minimum(e, b_end)
    span = (e - s).astype(np.float64)
    d = delta.astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        frac_hi = np.where(span > 0, (hi - s).astype(np.float64) / span, 1.0)
        frac_lo = np.where(span > 0, (lo - s).astype(np.float64) / span, 0.0)
    return (np.rint(d * frac_hi) - np.rint(d * frac_lo)).astype(np.int64)


def split_on_grid(ledger_cols: dict, series_tz: dict[int, str], period: str = "5min"):
    """Pieces of each ledger entry per bucket of ``period`` on its series' local clock.

    Parameters
    ----------
    ledger_cols : dict of numpy.ndarray
        ``series_id``, ``start_ts`` and ``end_ts`` (UTC epoch seconds), ``delta``
        (milli-Wh) and ``flags`` (``quality.Flag`` bits) of the entries.
    series_tz : dict of int to str
        IANA zone of each series (a group's roll-up may give its members the group's).
    period : str
        One of ``PERIODS``.

    Returns
    -------
    tuple of numpy.ndarray
        (series_id, bucket start, bucket end, energy, flags, split_start, split_end),
        one row per (entry, bucket) overlap; instants in UTC epoch seconds, energy in
        milli-Wh. ``split_start``: the entry began before the bucket; ``split_end``:
        it ended after it.
    """
    sid = np.asarray(ledger_cols["series_id"], np.int64)
    s = np.asarray(ledger_cols["start_ts"], np.int64)
    e = np.asarray(ledger_cols["end_ts"], np.int64)
    first = np.zeros(len(s), np.int64)  # index of an entry's first bucket into all_edges
    count = np.ones(len(s), np.int64)
    zone_edges, base = [], 0  # the edges of each zone, one zone after another
    for mask, tz in _zones(series_tz, sid):
        ms, last_second = s[mask], np.maximum(e[mask] - 1, s[mask])
        edges = _edges(tz, period, int(ms.min()), int(last_second.max()), limit=None)
        i0 = np.searchsorted(edges, ms, side="right") - 1
        i1 = np.searchsorted(edges, last_second, side="right") - 1
        first[mask], count[mask] = base + i0, i1 - i0 + 1
        zone_edges.append(edges)
        base += len(edges)
    all_edges = np.concatenate(zone_edges) if zone_edges else np.zeros(1, np.int64)
    idx = np.repeat(np.arange(len(s)), count)
    offset = np.arange(len(idx)) - np.repeat(np.cumsum(count) - count, count)
    at = first[idx] + offset
    b_start, b_end = all_edges[at], all_edges[at + 1]
    energy = piece_energy(s[idx], e[idx], np.asarray(ledger_cols["delta"], np.int64)[idx], b_start, b_end)
    fl = np.asarray(ledger_cols["flags"], np.int64)[idx]
    on, hc = _quality_pieces(s[idx], e[idx], _entry_on_time(ledger_cols, len(s))[idx], fl, energy, b_start, b_end)
    return (sid[idx], b_start, b_end, energy, fl, s[idx] < b_start, e[idx] > b_end, on, hc)


def base_buckets(ledger_cols: dict, reading_cols: dict, series_tz: dict[int, str]) -> Buckets:
    """5-minute buckets, on each series' local clock, from ledger entries and readings.

    Parameters
    ----------
    ledger_cols : dict of numpy.ndarray
        ``series_id``, ``start_ts``, ``end_ts`` (UTC epoch seconds), ``delta``
        (milli-Wh), ``flags``.
    reading_cols : dict of numpy.ndarray
        ``series_id``, ``ts`` (UTC epoch seconds), ``value`` (canonical unit).
    series_tz : dict of int to str
        IANA zone of each series.

    Returns
    -------
    Buckets
        Every 5-minute bucket holding a ledger piece or a reading.
    """
    pieces = split_on_grid(ledger_cols, series_tz, "5min")
    r_sid = np.asarray(reading_cols["series_id"], np.int64)
    r_start, r_end = bucket_parents(np.asarray(reading_cols["ts"], np.int64), series_tz, r_sid, "5min")
    return _assemble(pieces, reading_cols, r_start, r_end)


def day_buckets(ledger_cols: dict, reading_cols: dict, series_tz: dict[int, str]) -> Buckets:
    """Local-day buckets straight from ledger entries and readings.

    A delta is cut only at the local midnights it spans, with the same telescoping
    rounding as :func:`split_on_grid`, so a day equals the sum of its 5-minute pieces
    exactly (the pieces' rounding telescopes to the day's own boundaries).

    Parameters
    ----------
    ledger_cols : dict of numpy.ndarray
        ``series_id``, ``start_ts``, ``end_ts`` (UTC epoch seconds), ``delta``
        (milli-Wh), ``flags``.
    reading_cols : dict of numpy.ndarray
        ``series_id``, ``ts`` (UTC epoch seconds), ``value`` (canonical unit).
    series_tz : dict of int to str
        IANA zone of each series.

    Returns
    -------
    Buckets
        Every local day holding a ledger piece or a reading (energy in milli-Wh).
    """
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
    energy = piece_energy(s[idx], e[idx], d[idx], day_start, day_end)
    on, hc = _quality_pieces(s[idx], e[idx], _entry_on_time(ledger_cols, len(s))[idx], fl[idx], energy,
                             day_start, day_end)
    pieces = (sid[idx], day_start, day_end, energy, fl[idx], s[idx] < day_start, e[idx] > day_end, on, hc)
    r_sid = np.asarray(reading_cols["series_id"], np.int64)
    r_ts = np.asarray(reading_cols["ts"], np.int64)
    r_day, r_end = calendar_parents(r_ts, series_tz, r_sid, "day")
    return _assemble(pieces, reading_cols, r_day, r_end)


def _assemble(pieces, reading_cols: dict, reading_start: np.ndarray, reading_end: np.ndarray) -> Buckets:
    """Buckets from ledger pieces (series, bucket start, bucket end, energy, flags,
    split_start, split_end, on-time, high-confidence energy) and readings with their
    bucket (start, end)."""
    sid, bst, bend, en, fl, ss, se, on, hc = pieces
    o = _order(sid, bst)
    sid, bst, bend, en, fl, ss, se, on, hc = sid[o], bst[o], bend[o], en[o], fl[o], ss[o], se[o], on[o], hc[o]
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
        out["on_time"][at_l] = _sum_known(on, g)
        out["hc_energy"][at_l] = np.add.reduceat(hc, g)
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
    out["on_time"][:] = -1
    return out


def _sum_known(on_time: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Per group, the sum of the known (>= 0) on-times; -1 where none is known."""
    known = on_time >= 0
    total = np.add.reduceat(np.where(known, on_time, 0), groups)
    return np.where(np.logical_or.reduceat(known, groups), total, -1)


def compose(children: Buckets, parent_start: np.ndarray, parent_end: np.ndarray) -> Buckets:
    """Coarser buckets from finer ones.

    Parameters
    ----------
    children : Buckets
        Buckets sorted by (series_id, start).
    parent_start, parent_end : numpy.ndarray of int64
        The parent bucket of each child, UTC epoch seconds (from
        :func:`bucket_parents`); each child must lie wholly inside its parent.

    Returns
    -------
    Buckets
        One bucket per (series, parent): energies (milli-Wh) and counts summed,
        min/max/last of the readings, flags or-ed, and split marks only where an
        entry crosses the parent's own edges.
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
    out["on_time"] = _sum_known(ch["on_time"], g)
    out["hc_energy"] = np.add.reduceat(ch["hc_energy"], g)
    # only a split at the parent's own boundary makes the parent estimated
    out["split_start"] = ch["split_start"][g] & (ch["start"][g] == ps[g])
    out["split_end"] = ch["split_end"][g_end] & (ch["end"][g_end] == pe[g_end])
    return out


_UNIT = {"day": "datetime64[D]", "month": "datetime64[M]", "year": "datetime64[Y]"}


def _zones(series_tz: dict[int, str], series_id: np.ndarray):
    """(mask or slice, zone) of each zone among ``series_id``; nothing when empty."""
    if not len(series_id):
        return
    zones = sorted(set(series_tz.values()))
    if len(zones) == 1:
        yield slice(None), zones[0]
        return
    ids, at = np.unique(series_id, return_inverse=True)
    zones = sorted({series_tz[int(s)] for s in ids.tolist()})
    zone_code = np.array([zones.index(series_tz[int(s)]) for s in ids.tolist()], np.int64)[at]
    for code, tz in enumerate(zones):
        yield zone_code == code, tz


def bucket_parents(
    instants: np.ndarray, series_tz: dict[int, str], series_id: np.ndarray, period: str
) -> tuple[np.ndarray, np.ndarray]:
    """The bucket of ``period`` holding each instant, on its series' local clock.

    Parameters
    ----------
    instants : numpy.ndarray of int64
        UTC epoch seconds (a reading's time, a child bucket's start...).
    series_tz : dict of int to str
        IANA zone of each series.
    series_id : numpy.ndarray of int64
        Series of each instant.
    period : str
        One of ``PERIODS``: the local wall clock's 5-minute, 15-minute or hour grid
        (``wallclock``), or the local day, month or year.

    Returns
    -------
    (numpy.ndarray, numpy.ndarray) of int64
        Start and end of each instant's bucket, UTC epoch seconds.
    """
    ps = np.empty(len(instants), np.int64)
    pe = np.empty(len(instants), np.int64)
    for mask, tz in _zones(series_tz, series_id):
        t = instants[mask]
        edges = _edges(tz, period, int(t.min()), int(t.max()))
        if edges is None:  # a range of many thousands of calendar buckets: convert each instant
            ps[mask], pe[mask] = _parents_by_conversion(t, tz, period)
            continue
        i = np.searchsorted(edges, t, side="right") - 1
        ps[mask], pe[mask] = edges[i], edges[i + 1]
    return ps, pe


def calendar_parents(
    starts: np.ndarray, series_tz: dict[int, str], series_id: np.ndarray, period: str
) -> tuple[np.ndarray, np.ndarray]:
    """Local day / month / year bucket (start, end) of each child start, per series zone
    (:func:`bucket_parents` for a calendar period)."""
    if period not in CALENDAR_PERIODS:
        raise ValueError(f"not a calendar period: {period!r}")
    return bucket_parents(starts, series_tz, series_id, period)


MAX_EDGES = 20_000


def _edges(tz: str, period: str, lo: int, hi: int, limit: int | None = MAX_EDGES) -> np.ndarray | None:
    """Boundaries of the consecutive buckets from the one holding ``lo`` to the one
    holding ``hi`` (so the last edge is after ``hi``); for a calendar period None if
    there would be more than ``limit`` (a fixed period's edges are computed in bulk)."""
    if period in FIXED_PERIODS:
        return wallclock.grid_edges(tz, FIXED_PERIODS[period], lo, hi)
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
    """Every bucket of ``period`` whose start lies in [start_ts, end_ts) on the local clock.

    Parameters
    ----------
    period : str
        One of ``PERIODS``.
    start_ts, end_ts : int
        UTC epoch seconds.
    tz : str
        IANA zone whose wall clock and calendar the buckets follow.

    Returns
    -------
    list of (int, int)
        (start, end) of each bucket, UTC epoch seconds, in order.
    """
    if end_ts <= start_ts:
        return []
    edges = _edges(tz, period, start_ts, end_ts - 1, limit=None).tolist()
    return [(a, b) for a, b in zip(edges, edges[1:]) if a >= start_ts]


def covering_span(period: str, start_ts: int, end_ts: int, tz: str) -> tuple[int, int]:
    """[start_ts, end_ts) widened to whole buckets of ``period`` on the local clock.

    Parameters
    ----------
    period : str
        One of ``PERIODS``.
    start_ts, end_ts : int
        UTC epoch seconds, ``start_ts < end_ts``.
    tz : str
        IANA zone.

    Returns
    -------
    (int, int)
        Start of the bucket holding ``start_ts`` and end of the one holding
        ``end_ts - 1``, UTC epoch seconds.
    """
    edges = _edges(tz, period, start_ts, end_ts - 1, limit=None)
    return int(edges[0]), int(edges[-1])


def _next_key(key: tuple, period: str) -> tuple:
    if period == "day":
        n = date(*key) + timedelta(days=1)
        return (n.year, n.month, n.day)
    if period == "month":
        return (key[0] + 1, 1) if key[1] == 12 else (key[0], key[1] + 1)
    return (key[0] + 1,)



"""Incremental aggregation: recompute only the buckets a batch touched.

Stored: local day, month and year buckets per series. Two ways in:

* a series whose batch only appended (the usual case: a sync, a live round) has its
  new entries and readings aggregated on their own (``appended_rows``) and merged
  into the stored rows by the upsert itself (``write_appended``,
  ``store.aggregates_repo.merge_expressions``): nothing is read back;
* a series that received late data is recomputed (``recompute``) over its changed
  time range [lo, hi):

1. every local day the range touches is rebuilt from the ledger entries and
   readings of that day (entries cut at local midnights, ``buckets.day_buckets``);
2. months are rebuilt from days and years from months: the freshly computed
   children plus the stored children at the fringes of the parent buckets.

5-minute, 15-minute and hourly buckets are computed from the ledger when asked for
(``store.fine_buckets``) with the same arithmetic, so they sum exactly to the stored days.
Storing them cost ~1.3 extra rows per 15-minute reading — most of the pipeline's
writes — for periods that are read over short ranges only.

Bucket coverage never shrinks (readings are never deleted, a late reading only
splits a ledger entry), so upserting the recomputed rows is enough.
"""

from __future__ import annotations

import numpy as np

from wattline.domain import buckets as B
from wattline.store import aggregates_repo
from wattline.store.aggregates_repo import AGG_COLUMNS, STORED_PERIODS  # noqa: F401 - rows are in this order
from wattline.store.engines import DbConnection as Connection
# stored period -> the stored period it is summed from
LEVELS = (("month", "day"), ("year", "month"))


def recompute(conn: Connection, ranges: dict[int, tuple[int, int]], tz: dict[int, str]) -> int:
    """Rebuild the stored buckets that overlap ``ranges``; returns rows written."""
    if not ranges:
        return 0
    sids = np.array(list(ranges), np.int64)
    lo = np.array([ranges[int(s)][0] for s in sids], np.int64)
    hi = np.array([ranges[int(s)][1] for s in sids], np.int64)
    day_a, _ = B.calendar_parents(lo, tz, sids, "day")
    _, day_b = B.calendar_parents(hi - 1, tz, sids, "day")
    day_rng = {s: (a, b) for s, a, b in zip(sids.tolist(), day_a.tolist(), day_b.tolist())}
    computed = {"day": _days(conn, day_rng, tz)}
    crange = {"day": day_rng}
    for period, child in LEVELS:
        computed[period], crange[period] = _rollup(conn, period, child, computed[child], crange[child], tz)
    rows = []
    for period in STORED_PERIODS:
        rows.extend(_to_rows(period, computed[period]))
    return aggregates_repo.upsert_buckets(conn, rows)


def appended_rows(ledger_cols: dict, reading_cols: dict, tz: dict[int, str]) -> list[tuple]:
    """The day/month/year bucket rows (``AGG_COLUMNS``) of appended entries and readings alone.

    For series whose batch only appended (nothing stored is later than what it
    wrote), the new entries and readings are disjoint from the stored ones, so these
    rows combine with the stored ones by :func:`write_appended` without reading
    anything back."""
    partial = {"day": B.day_buckets(ledger_cols, reading_cols, tz)}
    for period, child in LEVELS:
        ps, pe = B.calendar_parents(partial[child]["start"], tz, partial[child]["series_id"], period)
        partial[period] = B.compose(partial[child], ps, pe)
    rows = []
    for period in STORED_PERIODS:
        rows.extend(_to_rows(period, partial[period]))
    return rows


def write_appended(conn: Connection, rows: list[tuple]) -> int:
    """Merge :func:`appended_rows` into the stored buckets (``aggregates_repo.merge_buckets``:
    sums, min/max, or of flags, latest value); returns rows written."""
    return aggregates_repo.merge_buckets(conn, rows)


def _days(conn: Connection, rng: dict[int, tuple[int, int]], tz: dict[int, str]) -> B.Buckets:
    """Local-day buckets of each series over its [a, b) (local midnights)."""
    lc, rc = _inputs(conn, rng)
    return _within(B.day_buckets(lc, rc, tz), rng)


def _inputs(conn: Connection, rng: dict[int, tuple[int, int]]):
    """Ledger entries overlapping and readings inside each series' [a, b)."""
    return aggregates_repo.ledger_inputs(conn, rng)


def _within(bk: B.Buckets, rng: dict[int, tuple[int, int]]) -> B.Buckets:
    """Only buckets starting inside their series' range (the others are partial)."""
    ids = np.array(sorted(rng), np.int64)
    at = np.searchsorted(ids, bk["series_id"])  # every bucket's series is in rng
    a = np.array([rng[int(s)][0] for s in ids], np.int64)[at]
    b = np.array([rng[int(s)][1] for s in ids], np.int64)[at]
    keep = (bk["start"] >= a) & (bk["start"] < b)  # pieces outside: partial buckets
    return {k: v[keep] for k, v in bk.items()}


def _rollup(conn, period, child, children: B.Buckets, child_rng, tz):
    """Calendar ``period`` buckets from ``children``, adding the stored children at the fringes."""
    sids = np.array(list(child_rng.keys()), np.int64)
    lo = np.array([child_rng[int(s)][0] for s in sids], np.int64)
    hi = np.array([child_rng[int(s)][1] for s in sids], np.int64)
    pa, _ = B.calendar_parents(lo, tz, sids, period)
    _, pb = B.calendar_parents(hi - 1, tz, sids, period)
    fringe = []
    for s, a, l, h, b in zip(sids.tolist(), pa.tolist(), lo.tolist(), hi.tolist(), pb.tolist()):
        if a < l:
            fringe.append((s, a, l))
        if h < b:
            fringe.append((s, h, b))
    stored = read_buckets(conn, child, fringe)
    allc = {k: np.concatenate([children[k], stored[k]]) for k in B.COLUMNS}
    ps, pe = B.calendar_parents(allc["start"], tz, allc["series_id"], period)
    out = B.compose(allc, ps, pe)
    return out, {s: (a, b) for s, a, b in zip(sids.tolist(), pa.tolist(), pb.tolist())}


def read_buckets(conn: Connection, period: str, ranges: list[tuple[int, int, int]]) -> B.Buckets:
    """Stored buckets of ``period`` with start in each (series_id, lo, hi) range."""
    return from_rows(aggregates_repo.read_bucket_rows(conn, period, ranges))


def from_rows(rows) -> B.Buckets:
    if not rows:
        return B.empty()
    c = list(zip(*rows))
    f = lambda col: np.array([np.nan if v is None else v for v in col], np.float64)  # noqa: E731
    i = lambda col, d=0: np.array([d if v is None else v for v in col], np.int64)  # noqa: E731
    return {
        "series_id": i(c[0]), "start": i(c[1]), "end": i(c[2]), "energy": i(c[3]),
        "ledger_count": i(c[4]), "vmin": f(c[5]), "vmax": f(c[6]), "vsum": f(c[7]),
        "vcount": i(c[8]), "vlast": f(c[9]), "last_ts": i(c[10], -1), "flags": i(c[11]),
        "split_start": np.array([bool(v) for v in c[12]], bool),
        "split_end": np.array([bool(v) for v in c[13]], bool),
        "on_time": i(c[14], -1), "hc_energy": i(c[15]),
    }


def _to_rows(period: str, bk: B.Buckets) -> list[tuple]:
    def f(a):  # NaN -> NULL, vectorised
        return np.where(np.isnan(a), None, a).tolist()

    n = len(bk["series_id"])
    energy = np.where(bk["ledger_count"] > 0, bk["energy"].astype(object), None).tolist()
    last_ts = np.where(bk["last_ts"] >= 0, bk["last_ts"].astype(object), None).tolist()
    on_time = np.where(bk["on_time"] >= 0, bk["on_time"].astype(object), None).tolist()
    hc_energy = np.where(bk["ledger_count"] > 0, bk["hc_energy"].astype(object), None).tolist()
    return list(zip(
        bk["series_id"].tolist(), [period] * n, bk["start"].tolist(), bk["end"].tolist(), energy,
        f(bk["vmin"]), f(bk["vmax"]), f(bk["vsum"]), bk["vcount"].tolist(), f(bk["vlast"]), last_ts,
        bk["ledger_count"].tolist(), bk["flags"].tolist(), bk["split_start"].tolist(), bk["split_end"].tolist(),
        on_time, hc_energy,
    ))

"""The one entry point every source uses: a ReadingBatch in, derived data out.

    normalize (the source) -> validate -> store raw + readings -> ledger
    -> local day, month, year buckets -> summaries
    (5-minute, 15-minute and hourly buckets are computed from the ledger on read)

All writes of one batch happen in one telemetry transaction: a crash loses the
batch as a whole or not at all, and rerunning it changes nothing (rule 5). Only
the ledger entries and buckets a batch touches are re-derived.

Two paths, chosen per series: a series whose readings in the batch are all newer
than everything stored (a sync, a live round, a backfill in order) takes the
vectorised append path — one ledger pass for all such series, each reading inserted
once with the entry ending at it, buckets merged into the stored rows; a series
with late or repeated readings is upserted and re-derived from the database around
the touched range (``_apply_late``).
"""

from __future__ import annotations

from wattline import clock

import time
from dataclasses import dataclass, field

import numpy as np
from sqlalchemy import Connection, Engine

from wattline import metrics
from wattline.domain import ledger as ledger_mod
from wattline.domain.latest import LatestValueStore, newest_per_series
from wattline.domain.readings import ReadingBatch
from wattline.domain.validate import quarantine_reasons
from wattline.pipeline import aggregate, rawstore, rollup
from wattline.pipeline.series import SeriesCatalog, SeriesConfig
from wattline.store import bulk
from wattline.store.engines import write_transaction
from wattline.store.partitions import ReadingPartitions
from wattline.store.tables import LEDGER_COLUMNS, quarantined_readings, readings, series_info

FOLLOW_LIMIT = 64  # readings after a late insert fetched per round to find convergence


@dataclass
class Quarantined:
    series_id: int
    ts: int
    value: float
    reason: str


@dataclass
class IngestResult:
    readings_written: int = 0
    duplicates_in_batch: int = 0
    late_readings: int = 0  # older than the newest stored reading of their series
    ledger_entries: int = 0
    buckets_written: int = 0
    quarantined: list[Quarantined] = field(default_factory=list)
    touched_assets: set[int] = field(default_factory=set)


@dataclass
class _SeriesWork:
    """Per-series state of one batch."""

    cfg: SeriesConfig
    ts: np.ndarray
    value: np.ndarray
    stored_max: int | None = None
    prev_ts: int | None = None
    prev_value: float | None = None
    prev_ref: int | None = None
    lo: int = 0  # first instant whose buckets must be recomputed
    hi: int = 0  # end (exclusive)

    @property
    def appends(self) -> bool:
        """Every reading of the batch is newer than all stored ones: its readings and
        ledger entries have keys that cannot exist yet."""
        return self.stored_max is None or self.stored_max < self.ts[0]


class Pipeline:
    def __init__(self, telemetry: Engine, main_reader: Engine, latest_values: LatestValueStore | None = None):
        self.telemetry = telemetry
        self.latest_values = latest_values  # written after each commit (e.g. Redis), or None
        self.main_reader = main_reader
        self.catalog = SeriesCatalog(main_reader)
        self.partitions = ReadingPartitions(telemetry)
        self._series_info_known: set[int] = set()

    def ingest(
        self, batch: ReadingBatch, *, refresh_summaries: bool = True, now: int | None = None
    ) -> IngestResult:
        result = IngestResult()
        if len(batch) == 0:
            return result
        t0 = time.perf_counter()
        if batch.raw_index.max() >= len(batch.raw_payloads) or batch.raw_index.min() < -1:
            raise ValueError("raw_index must point into raw_payloads (or be -1)")
        configs = self.catalog.get_many(np.unique(batch.series_id).tolist())
        received = clock.now_s() if now is None else now
        reasons = quarantine_reasons(batch, configs)
        good = np.ones(len(batch), bool)
        good[list(reasons)] = False
        self.partitions.ensure(batch.ts[good])  # PostgreSQL: the batch's years exist first
        with write_transaction(self.telemetry, list(configs)) as conn:
            self._ensure_series_info(conn, configs)
            raw_ids = np.array(rawstore.store(conn, batch.raw_payloads, batch.source, received) + [-1], np.int64)
            link = raw_ids[batch.raw_index]  # raw_index -1 picks the trailing -1: no payload
            self._store_quarantine(conn, batch, reasons, link, received, result)
            if good.any():
                self._apply(conn, batch.take(good), link[good], configs, result)
            if refresh_summaries and result.touched_assets:
                rollup.refresh_summaries(conn, self.main_reader, result.touched_assets, now)
        if self.latest_values is not None and good.any():  # after commit; write() never raises
            self.latest_values.write(newest_per_series(
                batch.series_id[good], batch.ts[good], batch.value[good],
                {s: c.asset_id for s, c in configs.items()}))
        metrics.INGEST_SECONDS.labels(batch.source).observe(time.perf_counter() - t0)
        metrics.READINGS_INGESTED.labels(batch.source).inc(result.readings_written)
        metrics.READINGS_QUARANTINED.labels(batch.source).inc(len(result.quarantined))
        metrics.LATE_READINGS.labels(batch.source).inc(result.late_readings)
        return result

    # -- steps ---------------------------------------------------------------

    def _ensure_series_info(self, conn: Connection, configs: dict[int, SeriesConfig]) -> None:
        new = [c for sid, c in configs.items() if sid not in self._series_info_known]
        if not new:
            return
        rows = [(c.series_id, c.asset_id, c.point_key, c.metric_type.value, c.timezone, c.vendor_plant_id)
                for c in new]
        bulk.upsert(conn, series_info,
                    ("series_id", "asset_id", "point_key", "metric_type", "timezone", "vendor_plant_id"),
                    rows, key=("series_id",))
        self._series_info_known.update(c.series_id for c in new)

    def _store_quarantine(self, conn, batch, reasons: dict[int, str], link, received, result) -> None:
        rows = {}
        for i, reason in sorted(reasons.items()):
            sid, ts, v = int(batch.series_id[i]), int(batch.ts[i]), float(batch.value[i])
            rows[(sid, ts, reason)] = (sid, ts, reason, repr(v), int(link[i]) if link[i] != -1 else None, received)
            result.quarantined.append(Quarantined(sid, ts, v, reason))
        bulk.upsert(conn, quarantined_readings,
                    ("series_id", "ts", "reason", "value_text", "raw_event_id", "received_at"),
                    list(rows.values()), key=("series_id", "ts", "reason"))

    def _apply(self, conn: Connection, batch: ReadingBatch, link: np.ndarray,
               configs: dict[int, SeriesConfig], result: IngestResult) -> None:
        # last occurrence of a (series, ts) in the batch wins, like an upsert
        sid, ts, val, lk = batch.series_id, batch.ts, batch.value, link
        ds, dt = np.diff(sid), np.diff(ts)
        if not ((ds > 0) | ((ds == 0) & (dt > 0))).all():  # sources mostly send sorted batches
            order = np.lexsort((np.arange(len(batch)), ts, sid))
            sid, ts, val, lk = sid[order], ts[order], val[order], lk[order]
        keep = np.ones(len(sid), bool)
        keep[:-1] = (sid[1:] != sid[:-1]) | (ts[1:] != ts[:-1])
        result.duplicates_in_batch = int((~keep).sum())
        sid, ts, val, lk = sid[keep], ts[keep], val[keep], lk[keep]
        result.readings_written = len(sid)

        starts = np.flatnonzero(np.r_[True, sid[1:] != sid[:-1]])
        ends = np.r_[starts[1:], len(sid)]
        work = {
            int(sid[a]): _SeriesWork(configs[int(sid[a])], ts[a:b], val[a:b])
            for a, b in zip(starts, ends)
        }
        self._load_neighbours(conn, work)
        result.late_readings = int(sum(
            int((w.ts < w.stored_max).sum()) for w in work.values() if w.stored_max is not None))
        result.touched_assets.update(w.cfg.asset_id for w in work.values())

        appends = np.array([work[int(sid[a])].appends for a in starts], bool)
        seg_appends = np.repeat(appends, ends - starts)
        if appends.any():
            keys = [int(sid[a]) for a in starts[appends]]
            self._apply_appends(conn, {s: work[s] for s in keys}, sid[seg_appends], ts[seg_appends],
                                val[seg_appends], lk[seg_appends], result)
        if not appends.all():
            late = ~seg_appends
            keys = [int(sid[a]) for a in starts[~appends]]
            self._apply_late(conn, {s: work[s] for s in keys}, sid[late], ts[late], val[late], lk[late],
                             result)

    def _apply_appends(self, conn: Connection, work: dict[int, _SeriesWork], sid, ts, val, lk,
                       result: IngestResult) -> None:
        """Series whose readings are all newer than everything stored: one vectorised
        ledger pass, the readings inserted once with the entry ending at each, and
        their buckets merged into the stored ones."""
        seg_starts = np.flatnonzero(np.r_[True, sid[1:] != sid[:-1]])
        ws = list(work.values())  # in series order, like the segments
        led = ledger_mod.derive_appended(
            ts, val, seg_starts, [w.cfg.rules for w in ws], [w.prev_ts for w in ws],
            [w.prev_value for w in ws], [w.prev_ref for w in ws])
        result.ledger_entries += int(led.has.sum())

        h = led.has
        columns = (sid, ts, val, lk, led.start_ts, led.delta, led.method, led.confidence, led.flags, led.ref)
        # NULL: no raw payload; no entry (the first reading of a new series); no counter mark
        nulls = (None, None, None, lk == -1) + (~h,) * 5 + (~h | (led.ref < 0),)
        rows = _rows(columns, nulls)
        tz = {s: w.cfg.timezone for s, w in work.items()}
        with bulk.inserting_new(conn, readings, ("series_id", "ts", "value", "raw_event_id") + LEDGER_COLUMNS, rows):
            buckets = aggregate.appended_rows(led.entries(sid, ts), {"series_id": sid, "ts": ts, "value": val}, tz)
        result.buckets_written += aggregate.write_appended(conn, buckets)

    def _apply_late(self, conn: Connection, work: dict[int, _SeriesWork], sid, ts, val, lk,
                    result: IngestResult) -> None:
        """Series with readings at or before their newest stored one: upsert them, then
        re-derive the touched entries (forward until they converge) and recompute the
        buckets over the changed range from the database."""
        bulk.upsert(conn, readings, ("series_id", "ts", "value", "raw_event_id"),
                    list(zip(sid.tolist(), ts.tolist(), val.tolist(), _with_nulls(lk, lk == -1))),
                    key=("series_id", "ts"), update=("value", "raw_event_id"))
        entries = self._derive_ledger(conn, work)
        result.ledger_entries += sum(len(e[1]) for e in entries)
        changed = []
        for s, lr in entries:
            method = int(work[s].cfg.rules.method)
            changed.extend(zip(
                lr.start_ts.tolist(), lr.delta.tolist(), [method] * len(lr), lr.confidence.tolist(),
                lr.flags.tolist(), [None if r < 0 else r for r in lr.ref.tolist()], [s] * len(lr),
                lr.end_ts.tolist()))
        bulk.update(conn, readings, LEDGER_COLUMNS, ("series_id", "ts"), changed)
        ranges = {s: (w.lo, w.hi) for s, w in work.items()}
        tz = {s: w.cfg.timezone for s, w in work.items()}
        result.buckets_written += aggregate.recompute(conn, ranges, tz)

    def _load_neighbours(self, conn: Connection, work: dict[int, _SeriesWork]) -> None:
        """Newest stored reading of each series and the stored reading just before
        the batch's first (with its counter high-water mark). For a batch that only
        appends they are the same reading: one lookup per series."""
        newest = _readings_before(conn, [(s, 2**62) for s in work])
        late = []
        for s, w in work.items():
            ts, value, ref = newest.get(s, (None, None, None))
            w.stored_max = ts
            if ts is not None and ts < w.ts[0]:
                w.prev_ts, w.prev_value, w.prev_ref = ts, value, ref
            elif ts is not None:
                late.append((s, int(w.ts[0])))
        for s, (ts, value, ref) in _readings_before(conn, late).items():
            work[s].prev_ts, work[s].prev_value, work[s].prev_ref = ts, value, ref

    def _derive_ledger(self, conn: Connection, work: dict[int, _SeriesWork]):
        """Ledger entries to (re)write per series; also sets each series' bucket range."""
        out = []
        self._merge_stored_window(conn, work)
        for s, w in work.items():
            rules = w.cfg.rules
            w.lo, w.hi = int(w.ts[0]), int(w.ts[-1]) + 1
            if rules is None:
                continue
            # derive() takes a neighbour without a stored mark (it opened the series) at its value
            lr = ledger_mod.derive(w.ts, w.value, rules, w.prev_ts, w.prev_value, w.prev_ref)
            lr = self._extend_to_convergence(conn, s, w, lr, rules, w.prev_ref)
            if len(lr):
                w.lo = min(w.lo, int(lr.start_ts.min()))
                w.hi = max(w.hi, int(lr.end_ts.max()))
            out.append((s, lr))
        return out

    def _merge_stored_window(self, conn: Connection, work: dict[int, _SeriesWork]) -> None:
        """For late data: the window becomes every stored reading in [tmin, tmax]
        (already upserted with the batch's values)."""
        cte = bulk.values_cte("t", ("series_id", "tmin", "tmax"),
                              [(s, w.ts[0], w.ts[-1]) for s, w in work.items()])
        q = f"""
            WITH {cte}
            SELECT r.series_id, r.ts, r.value FROM t
            JOIN readings r ON r.series_id = t.series_id AND r.ts >= t.tmin AND r.ts <= t.tmax
            ORDER BY r.series_id, r.ts
        """
        rows = conn.exec_driver_sql(q).fetchall()
        by: dict[int, list] = {}
        for s, t, v in rows:
            by.setdefault(s, []).append((t, v))
        for s, w in work.items():
            pts = by.get(s, [])
            if pts:
                w.ts = np.array([p[0] for p in pts], np.int64)
                w.value = np.array([p[1] for p in pts], np.float64)

    def _extend_to_convergence(self, conn, s, w, lr, rules, prev_ref):
        """Re-derive stored entries after the window until one comes out unchanged."""
        limit = FOLLOW_LIMIT
        while True:
            q = f"""
                SELECT r.ts, r.value, r.start_ts, r.delta_milli_wh, r.flags, r.ref_milli_wh
                FROM readings r
                WHERE r.series_id = {int(s)} AND r.ts > {int(w.ts[-1])}
                ORDER BY r.ts LIMIT {int(limit)}
            """
            follow = conn.exec_driver_sql(q).fetchall()
            if not follow:
                return lr
            f_ts = np.array([f[0] for f in follow], np.int64)
            f_v = np.array([f[1] for f in follow], np.float64)
            all_lr = ledger_mod.derive(np.r_[w.ts, f_ts], np.r_[w.value, f_v], rules,
                                       w.prev_ts, w.prev_value, prev_ref)
            n_window = len(all_lr) - len(follow)
            for j, f in enumerate(follow):
                k = n_window + j
                stored = (f[2], f[3], f[4], -1 if f[5] is None else f[5])
                new = (int(all_lr.start_ts[k]), int(all_lr.delta[k]), int(all_lr.flags[k]), int(all_lr.ref[k]))
                if stored == new:
                    return _slice(all_lr, k)
            if len(follow) < limit:
                return all_lr
            limit *= 4


def _readings_before(conn: Connection, keys: list[tuple[int, int]]) -> dict[int, tuple]:
    """For each (series_id, t): the series' newest stored reading before t, as
    (ts, value, ref_milli_wh); series without one are left out."""
    if not keys:
        return {}
    cte = bulk.values_cte("t", ("series_id", "t"), keys)
    if conn.dialect.name == "postgresql":  # one backward index scan per series
        sql = f"""
            WITH {cte}
            SELECT t.series_id, r.ts, r.value, r.ref_milli_wh FROM t
            CROSS JOIN LATERAL (SELECT ts, value, ref_milli_wh FROM readings m
                                WHERE m.series_id = t.series_id AND m.ts < t.t ORDER BY m.ts DESC LIMIT 1) r
        """
    else:
        sql = f"""
            WITH {cte}
            SELECT r.series_id, r.ts, r.value, r.ref_milli_wh FROM t
            JOIN readings r ON r.series_id = t.series_id
             AND r.ts = (SELECT MAX(m.ts) FROM readings m WHERE m.series_id = t.series_id AND m.ts < t.t)
        """
    rows = conn.exec_driver_sql(sql).fetchall()
    return {s: (ts, value, ref) for s, ts, value, ref in rows}


ROW_CHUNK = 8192  # rows converted to Python at a time: a COPY starts streaming at once


def _rows(columns: tuple[np.ndarray, ...], nulls: tuple[np.ndarray | None, ...]):
    """Row tuples from numpy columns, None where ``nulls`` says, converted chunk by chunk."""
    n = len(columns[0])
    for a in range(0, n, ROW_CHUNK):
        b = min(a + ROW_CHUNK, n)
        yield from zip(*(_with_nulls(c[a:b], None if m is None else m[a:b]) for c, m in zip(columns, nulls)))


def _with_nulls(values: np.ndarray, null: np.ndarray | None) -> list:
    """``values`` as a Python list with None where ``null`` is true."""
    if null is None or not null.any():
        return values.tolist()
    if null.all():
        return [None] * len(values)
    return np.where(null, None, values.astype(object)).tolist()


def _slice(lr: ledger_mod.LedgerRows, n: int) -> ledger_mod.LedgerRows:
    return ledger_mod.LedgerRows(lr.start_ts[:n], lr.end_ts[:n], lr.delta[:n], lr.flags[:n],
                                 lr.confidence[:n], lr.ref[:n])

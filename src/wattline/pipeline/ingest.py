"""The one entry point every source uses: a ReadingBatch in, derived data out.

    normalize (the source) -> validate -> store raw + readings -> ledger
    -> local day, month, year buckets -> summaries
    (5-minute, 15-minute and hourly buckets are computed from the ledger on read)

All writes of one batch happen in one telemetry transaction: a crash loses the
batch as a whole or not at all, and rerunning it changes nothing (rule 5). Only
the ledger entries and buckets a batch touches are re-derived.

First, readings identical to stored ones (same series, ts and value: a sync window
overlapping what is stored, a page fetched twice, a redelivered message) are
dropped, found by one read of the stored readings in the range where the batch
overlaps its series' history; they change nothing and cost only that read
(``IngestResult.repeats``). Then two paths, chosen per series: a series whose
remaining readings are all newer than everything stored (a sync, a live round, a
backfill in order) takes the vectorised append path — one ledger pass for all such
series, each reading inserted once with the entry ending at it, buckets merged into
the stored rows; a series with late or changed readings is upserted and re-derived
from the database around the touched range (``_apply_late``).

A device's energy series is gated by its switch-state series (``SeriesConfig.
gate_series_id``): each entry gets its on-time, power-integrated energy counts only
while on, and metered energy while off is flagged (``ledger.apply_switch``). The
state at an entry's start comes from the batch and the stored readings together, so
the rule holds whatever order messages arrive in.

SQL lives in ``store/`` (``readings_repo``, ``aggregates_repo``, ``raw_events``);
this module holds the flow.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from wattline import clock, logs, metrics
from wattline.domain.readings import ReadingBatch
from wattline.domain import ledger as ledger_mod
from wattline.domain.latest import LatestValueStore, newest_per_series
from wattline.pipeline import aggregate, rollup
from wattline.pipeline.series import SeriesCatalog, SeriesConfig
from wattline.domain.validate import quarantine_reasons
from wattline.store import raw_events, readings_repo
from wattline.store.engines import DbConnection, DbEngine, write_transaction
from wattline.store.partitions import ReadingPartitions

log = logs.get("wattline.pipeline")

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
    repeats: int = 0  # identical to a stored reading (series, ts, value): nothing written
    late_readings: int = 0  # older than the newest stored reading of their series
    late_by_series: dict[int, int] = field(default_factory=dict)  # the same, per series
    ledger_entries: int = 0
    buckets_written: int = 0
    quarantined: list[Quarantined] = field(default_factory=list)
    touched_assets: set[int] = field(default_factory=set)
    # series id -> (ts, value) of each reading of the batch that became its series'
    # newest stored one: what a latest-value store writes after commit
    newest: dict[int, tuple[int, float]] = field(default_factory=dict)

    @property
    def accepted(self) -> int:
        """Readings taken in: written, or identical to stored ones (not quarantined, not
        superseded within the batch)."""
        return self.readings_written + self.repeats


AfterCommit = Callable[[ReadingBatch, IngestResult], None]


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
    def __init__(self, telemetry: DbEngine, main_reader: DbEngine, latest_values: LatestValueStore | None = None):
        self.telemetry = telemetry
        self.latest_values = latest_values  # written after each commit (e.g. Redis), or None
        self.main_reader = main_reader
        self.catalog = SeriesCatalog(main_reader)
        self.partitions = ReadingPartitions(telemetry)
        # run after each batch's transaction committed, in order, with the batch and its
        # result (e.g. writing latest values); a failing hook is logged, never undoes the batch
        self.after_commit: list[AfterCommit] = []
        self._series_info_written: dict[int, SeriesConfig] = {}

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
            info_written = self._ensure_series_info(conn, configs)
            raw_ids = np.array(raw_events.store(conn, batch.raw_payloads, batch.source, received) + [-1], np.int64)
            link = raw_ids[batch.raw_index]  # raw_index -1 picks the trailing -1: no payload
            self._store_quarantine(conn, batch, reasons, link, received, result)
            if good.any():
                self._apply(conn, batch.take(good), link[good], configs, result)
            if refresh_summaries and result.touched_assets:
                rollup.refresh_summaries(conn, self.main_reader, result.touched_assets, now)
        self._series_info_written.update(info_written)
        self._run_after_commit(batch, result)
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

    def _run_after_commit(self, batch: ReadingBatch, result: IngestResult) -> None:
        for hook in self.after_commit:
            try:
                hook(batch, result)
            except Exception:  # noqa: BLE001 - the batch is committed; a hook cannot undo it
                log.exception("pipeline.after_commit_failed", hook=getattr(hook, "__name__", repr(hook)))

    def _ensure_series_info(self, conn: DbConnection, configs: dict[int, SeriesConfig]) -> dict[int, SeriesConfig]:
        """Copy new or changed configs into ``series_info``; returns what to remember once committed."""
        # the catalog hands out a new object only when a config changed (new timezone...)
        new = {sid: c for sid, c in configs.items() if self._series_info_written.get(sid) is not c}
        if new:
            readings_repo.upsert_series_info(
                conn, [(c.series_id, c.asset_id, c.point_key, c.metric_type.value, c.timezone, c.vendor_plant_id)
                       for c in new.values()])
        return new

    def _store_quarantine(self, conn, batch, reasons: dict[int, str], link, received, result) -> None:
        rows = {}
        for i, reason in sorted(reasons.items()):
            sid, ts, v = int(batch.series_id[i]), int(batch.ts[i]), float(batch.value[i])
            rows[(sid, ts, reason)] = (sid, ts, reason, repr(v), int(link[i]) if link[i] != -1 else None, received)
            result.quarantined.append(Quarantined(sid, ts, v, reason))
        readings_repo.upsert_quarantined(conn, list(rows.values()))

    def _apply(self, conn: DbConnection, batch: ReadingBatch, link: np.ndarray,
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

        # newest stored reading of each series: for a batch that only appends, the
        # one lookup it needs (the previous reading of its first entry)
        newest = readings_repo.newest_before(conn, [(s, 2**62) for s in np.unique(sid).tolist()])
        repeat = _stored_repeats(conn, sid, ts, val, newest)
        if repeat is not None:
            result.repeats = int(repeat.sum())
            fresh = ~repeat
            sid, ts, val, lk = sid[fresh], ts[fresh], val[fresh], lk[fresh]
        result.readings_written = len(sid)
        if not len(sid):
            return

        starts = np.flatnonzero(np.r_[True, sid[1:] != sid[:-1]])
        ends = np.r_[starts[1:], len(sid)]
        work = {
            int(sid[a]): _SeriesWork(configs[int(sid[a])], ts[a:b], val[a:b])
            for a, b in zip(starts, ends)
        }
        self._load_neighbours(conn, work, newest)
        result.late_by_series = {s: int((w.ts < w.stored_max).sum()) for s, w in work.items()
                                 if w.stored_max is not None and w.ts[0] < w.stored_max}
        result.late_readings = sum(result.late_by_series.values())
        result.touched_assets.update(w.cfg.asset_id for w in work.values())
        result.newest.update(
            (s, (int(w.ts[-1]), float(w.value[-1]))) for s, w in work.items()
            if w.stored_max is None or w.ts[-1] > w.stored_max)

        appends = np.array([work[int(sid[a])].appends for a in starts], bool)
        seg_appends = np.repeat(appends, ends - starts)
        if appends.any():
            keys = [int(sid[a]) for a in starts[appends]]
            self._apply_appends(conn, {s: work[s] for s in keys}, sid[seg_appends], ts[seg_appends],
                                val[seg_appends], lk[seg_appends], result, (sid, ts, val))
        if not appends.all():
            late = ~seg_appends
            keys = [int(sid[a]) for a in starts[~appends]]
            self._apply_late(conn, {s: work[s] for s in keys}, sid[late], ts[late], val[late], lk[late],
                             result)

    def _apply_appends(self, conn: DbConnection, work: dict[int, _SeriesWork], sid, ts, val, lk,
                       result: IngestResult, batch_cols: tuple) -> None:
        """Series whose readings are all newer than everything stored: one vectorised
        ledger pass, the readings inserted once with the entry ending at each, and
        their buckets merged into the stored ones."""
        seg_starts = np.flatnonzero(np.r_[True, sid[1:] != sid[:-1]])
        ws = list(work.values())  # in series order, like the segments
        led = ledger_mod.derive_appended(
            ts, val, seg_starts, [w.cfg.rules for w in ws], [w.prev_ts for w in ws],
            [w.prev_value for w in ws], [w.prev_ref for w in ws])
        self._switch_appended(conn, led, seg_starts, ws, ts, val, batch_cols)
        result.ledger_entries += int(led.has.sum())

        h = led.has
        on_time = led.on_time if led.on_time is not None else np.full(len(ts), -1, np.int64)
        columns = (sid, ts, val, lk, led.start_ts, led.delta, led.method, led.confidence, led.flags, led.ref,
                   on_time)
        # NULL: no raw payload; no entry (the first reading of a new series); no counter
        # mark; no switch state known
        nulls = (None, None, None, lk == -1) + (~h,) * 5 + (~h | (led.ref < 0), ~h | (on_time < 0))
        rows = _rows(columns, nulls)
        tz = {s: w.cfg.timezone for s, w in work.items()}
        with readings_repo.inserting_new_with_entries(conn, rows):
            buckets = aggregate.appended_rows(led.entries(sid, ts), {"series_id": sid, "ts": ts, "value": val}, tz)
        result.buckets_written += aggregate.write_appended(conn, buckets)

    def _switch_appended(self, conn: DbConnection, led: ledger_mod.AlignedLedger, seg_starts: np.ndarray,
                         ws: list[_SeriesWork], ts: np.ndarray, val: np.ndarray, batch_cols: tuple) -> None:
        """The switch rule over the appended entries of gated series (in place)."""
        gate_of = np.array([w.cfg.gate_series_id if w.cfg.gate_series_id is not None and w.cfg.rules else -1
                            for w in ws], np.int64)
        if not (gate_of >= 0).any():
            return
        n = len(ts)
        gate = np.repeat(gate_of, np.diff(np.append(seg_starts, n)))
        m = led.has & (gate >= 0)
        led.on_time = np.full(n, -1, np.int64)
        if not m.any():
            return
        # the power reported at each entry's start: the reading before it
        before_v = np.r_[np.nan, val[:-1]]
        before_v[seg_starts] = [np.nan if w.prev_value is None else w.prev_value for w in ws]
        starts = led.start_ts[m]
        state = self._gate_states(conn, gate[m], starts, batch_cols)
        sw = ledger_mod.apply_switch(starts, ts[m], led.delta[m], led.flags[m], led.method[m], before_v[m], state)
        led.delta[m], led.flags[m], led.on_time[m] = sw.delta, sw.flags, sw.on_time

    @staticmethod
    def _gate_states(conn: DbConnection, gate: np.ndarray, instants: np.ndarray,
                     batch_cols: tuple | None = None) -> np.ndarray:
        """The switch state holding at each instant of each gate series: the latest
        state at or before it, from the stored readings and (taking precedence, as
        they are being written) the batch's. NaN where none is known."""
        out = np.full(len(instants), np.nan)
        ids = np.unique(gate).tolist()
        lo = {g: int(instants[gate == g].min()) for g in ids}
        hi = {g: int(instants[gate == g].max()) for g in ids}
        stored = readings_repo.values_in_ranges(conn, [(g, lo[g], hi[g]) for g in ids])
        before = readings_repo.newest_before(conn, [(g, lo[g]) for g in ids])
        for g in ids:
            parts_ts = [stored["ts"][stored["series_id"] == g]]
            parts_v = [stored["value"][stored["series_id"] == g]]
            if g in before:
                parts_ts.insert(0, np.array([before[g][0]], np.int64))
                parts_v.insert(0, np.array([before[g][1]], np.float64))
            if batch_cols is not None:
                b_sid, b_ts, b_v = batch_cols
                mine = b_sid == g
                parts_ts.append(b_ts[mine])
                parts_v.append(b_v[mine])
            g_ts, g_v = np.concatenate(parts_ts), np.concatenate(parts_v)
            # stable by time, the batch last: the last of equal instants is the batch's
            order = np.argsort(g_ts, kind="stable")
            g_ts, g_v = g_ts[order], g_v[order]
            last = np.r_[g_ts[1:] != g_ts[:-1], True] if len(g_ts) else np.zeros(0, bool)
            sel = gate == g
            out[sel] = ledger_mod.states_at(instants[sel], g_ts[last], g_v[last])
        return out

    def _switched(self, conn: DbConnection, cfg: SeriesConfig, lr: ledger_mod.LedgerRows, ts: np.ndarray,
                  values: np.ndarray, prev_ts: int | None, prev_value: float | None) -> ledger_mod.LedgerRows:
        """``lr`` (derived from readings ``ts``/``values`` after the neighbour
        ``prev_ts``) under the switch rule, states read from the database (the late
        path has written the batch's readings first). Ungated series: unchanged."""
        if cfg.gate_series_id is None or not len(lr):
            return lr
        all_ts = ts if prev_ts is None else np.r_[np.int64(prev_ts), ts]
        all_v = values if prev_ts is None else np.r_[prev_value, values]
        start_v = all_v[np.searchsorted(all_ts, lr.start_ts)]
        state = self._gate_states(conn, np.full(len(lr), cfg.gate_series_id, np.int64), lr.start_ts)
        method = np.full(len(lr), int(cfg.rules.method), np.int64)
        sw = ledger_mod.apply_switch(lr.start_ts, lr.end_ts, lr.delta, lr.flags, method, start_v, state)
        return ledger_mod.LedgerRows(lr.start_ts, lr.end_ts, sw.delta, sw.flags, lr.confidence, lr.ref, sw.on_time)

    def _apply_late(self, conn: DbConnection, work: dict[int, _SeriesWork], sid, ts, val, lk,
                    result: IngestResult) -> None:
        """Series with readings at or before their newest stored one: upsert them, then
        re-derive the touched entries (forward until they converge) and recompute the
        buckets over the changed range from the database."""
        readings_repo.upsert_values(
            conn, list(zip(sid.tolist(), ts.tolist(), val.tolist(), _with_nulls(lk, lk == -1))))
        entries = self._derive_ledger(conn, work)
        result.ledger_entries += sum(len(e[1]) for e in entries)
        changed = []
        for s, lr in entries:
            method = int(work[s].cfg.rules.method)
            on_time = [None] * len(lr) if lr.on_time is None else [None if o < 0 else o for o in lr.on_time.tolist()]
            changed.extend(zip(
                lr.start_ts.tolist(), lr.delta.tolist(), [method] * len(lr), lr.confidence.tolist(),
                lr.flags.tolist(), [None if r < 0 else r for r in lr.ref.tolist()], on_time, [s] * len(lr),
                lr.end_ts.tolist()))
        readings_repo.update_entries(conn, changed)
        ranges = {s: (w.lo, w.hi) for s, w in work.items()}
        tz = {s: w.cfg.timezone for s, w in work.items()}
        result.buckets_written += aggregate.recompute(conn, ranges, tz)

    def _load_neighbours(self, conn: DbConnection, work: dict[int, _SeriesWork],
                         newest: dict[int, tuple]) -> None:
        """Each series' newest stored reading (``newest``) and the stored reading just
        before the batch's first (with its counter high-water mark). For a batch that
        only appends they are the same reading: nothing more to read."""
        late = []
        for s, w in work.items():
            ts, value, ref = newest.get(s, (None, None, None))
            w.stored_max = ts
            if ts is not None and ts < w.ts[0]:
                w.prev_ts, w.prev_value, w.prev_ref = ts, value, ref
            elif ts is not None:
                late.append((s, int(w.ts[0])))
        for s, (ts, value, ref) in readings_repo.newest_before(conn, late).items():
            work[s].prev_ts, work[s].prev_value, work[s].prev_ref = ts, value, ref

    def _derive_ledger(self, conn: DbConnection, work: dict[int, _SeriesWork]):
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
            lr = self._switched(conn, w.cfg, lr, w.ts, w.value, w.prev_ts, w.prev_value)
            lr = self._extend_to_convergence(conn, s, w, lr, rules, w.prev_ref)
            if len(lr):
                w.lo = min(w.lo, int(lr.start_ts.min()))
                w.hi = max(w.hi, int(lr.end_ts.max()))
            out.append((s, lr))
        return out

    def _merge_stored_window(self, conn: DbConnection, work: dict[int, _SeriesWork]) -> None:
        """For late data: the window becomes every stored reading in [tmin, tmax]
        (already upserted with the batch's values)."""
        stored = readings_repo.values_in_ranges(conn, [(s, w.ts[0], w.ts[-1]) for s, w in work.items()])
        ids = stored["series_id"]
        for s, w in work.items():
            a, b = np.searchsorted(ids, s, "left"), np.searchsorted(ids, s, "right")
            if b > a:
                w.ts, w.value = stored["ts"][a:b], stored["value"][a:b]

    def _extend_to_convergence(self, conn, s, w, lr, rules, prev_ref):
        """Re-derive stored entries after the window until one comes out unchanged."""
        limit = FOLLOW_LIMIT
        while True:
            follow = readings_repo.entries_after(conn, s, int(w.ts[-1]), limit)
            if not follow:
                return lr
            f_ts = np.array([f[0] for f in follow], np.int64)
            f_v = np.array([f[1] for f in follow], np.float64)
            all_ts, all_v = np.r_[w.ts, f_ts], np.r_[w.value, f_v]
            all_lr = ledger_mod.derive(all_ts, all_v, rules, w.prev_ts, w.prev_value, prev_ref)
            all_lr = self._switched(conn, w.cfg, all_lr, all_ts, all_v, w.prev_ts, w.prev_value)
            n_window = len(all_lr) - len(follow)
            for j, f in enumerate(follow):
                k = n_window + j
                stored = (f[2], f[3], f[4], -1 if f[5] is None else f[5], -1 if f[6] is None else f[6])
                on = -1 if all_lr.on_time is None else int(all_lr.on_time[k])
                new = (int(all_lr.start_ts[k]), int(all_lr.delta[k]), int(all_lr.flags[k]), int(all_lr.ref[k]), on)
                if stored == new:
                    return _slice(all_lr, k)
            if len(follow) < limit:
                return all_lr
            limit *= 4


def _stored_repeats(conn: DbConnection, sid: np.ndarray, ts: np.ndarray, val: np.ndarray,
                    newest: dict[int, tuple]) -> np.ndarray | None:
    """Which readings of a (series, ts)-sorted, duplicate-free batch are already stored
    with the same value (None: the batch cannot overlap what is stored).

    Only where a series' batch reaches back to or before its newest stored reading is
    there anything to compare: those ranges are read in one query and matched in numpy."""
    starts = np.flatnonzero(np.r_[True, sid[1:] != sid[:-1]])
    ends = np.r_[starts[1:], len(sid)]
    ranges = []
    for a, b in zip(starts.tolist(), ends.tolist()):
        stored_max = newest.get(int(sid[a]), (None,))[0]
        if stored_max is not None and ts[a] <= stored_max:
            ranges.append((int(sid[a]), int(ts[a]), min(int(ts[b - 1]), stored_max)))
    if not ranges:
        return None
    stored = readings_repo.values_in_ranges(conn, ranges)
    n = len(stored["ts"])
    if not n:
        return None
    # stored rows and the batch in one (series, ts) order, a stored row just before
    # the batch row with the same key (each side holds a key at most once)
    all_sid, all_ts = np.r_[stored["series_id"], sid], np.r_[stored["ts"], ts]
    order = np.lexsort((np.r_[np.zeros(n, np.int8), np.ones(len(sid), np.int8)], all_ts, all_sid))
    s_o, t_o = all_sid[order], all_ts[order]
    pair = np.flatnonzero((s_o[1:] == s_o[:-1]) & (t_o[1:] == t_o[:-1]))
    at_batch, at_stored = order[pair + 1] - n, order[pair]
    repeat = np.zeros(len(sid), bool)
    repeat[at_batch] = stored["value"][at_stored] == val[at_batch]
    return repeat


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
                                 lr.confidence[:n], lr.ref[:n], None if lr.on_time is None else lr.on_time[:n])

"""Readings/s through the whole pipeline vs a bare bulk insert of the same rows.

    .venv/bin/python bench/pipeline.py [--series 1000] [--readings 1000] [--chunk 100]
                                       [--backend sqlite|postgres|both] [--raw] [--repeat N]
                                       [--summaries end|per-batch]

Series come in pairs per plant (``energy_total`` counter + ``power``), 15-minute
readings, delivered time window by time window (``--chunk`` timestamps of every
series per batch), as a fleet's sync would. With ``--raw`` each plant reading pair
carries a vendor-like raw JSON record. The baseline inserts the identical
(series_id, ts, value) rows into a copy of the readings table in the same database
(on PostgreSQL partitioned by year like readings), one transaction, with the writer the pipeline uses for new readings
(``bulk.insert_new``: a plain executemany INSERT on SQLite, a binary COPY on
PostgreSQL). Plant summaries are refreshed once after the run, inside the timing, as
the daily sync does (``--summaries per-batch``: in every batch, as live polling).

Prints rates, the ratio and peak memory; with ``--repeat N`` each round runs on fresh
databases and the medians are printed. Both timed sections start with the database's
write-ahead log flushed (``settle``).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
from sqlalchemy import create_engine, text

from wattline.domain.metrics import MetricType
from wattline.domain.readings import ReadingBatch
from wattline.pipeline import Pipeline, rollup
from wattline.store import bulk, partitions, registry
from wattline.store.engines import open_databases
from wattline.store.migrate import upgrade_all
from wattline.store.tables import readings

PG_ADMIN = os.environ.get("WATTLINE_TEST_PG", "postgresql+psycopg://root@127.0.0.1:5432/test")
T0 = 1_735_689_600  # 2025-01-01T00:00Z


def make_data(n_series: int, n_readings: int):
    plants = n_series // 2
    ts = T0 + np.arange(n_readings, dtype=np.int64) * 900
    rng = np.random.default_rng(7)
    power = np.clip(rng.normal(50, 20, (plants, n_readings)), 0, None)
    energy = np.cumsum(power * 0.25, axis=1) + rng.uniform(1e3, 1e5, (plants, 1))
    return ts, energy, power


def setup(dbs, n_series):
    ids = []
    with dbs.main.begin() as conn:
        for p in range(n_series // 2):
            aid = registry.add_asset(conn, f"bench-{p}", "plant", "Europe/Berlin", vendor_plant_id=str(p))
            s = registry.ensure_points(conn, aid, [registry.PointDefinition("energy_total", MetricType.COUNTER),
                                                   registry.PointDefinition("power", MetricType.POWER)])
            ids.append((s["energy_total"], s["power"]))
    return np.array(ids, np.int64)


def batches(ids, ts, energy, power, chunk, with_raw):
    plants = len(ids)
    for a in range(0, len(ts), chunk):
        t = ts[a:a + chunk]
        k = len(t)
        sid = np.concatenate([np.repeat(ids[:, 0], k), np.repeat(ids[:, 1], k)])
        tt = np.concatenate([np.tile(t, plants), np.tile(t, plants)])
        val = np.concatenate([energy[:, a:a + chunk].ravel(), power[:, a:a + chunk].ravel()])
        if with_raw:
            raw = [{"stationId": int(p), "lastUpdateTime": int(x), "generationUploadTotalOffset": float(e),
                    "generationPower": float(w) * 1000}
                   for p in range(plants) for x, e, w in zip(t, energy[p, a:a + chunk], power[p, a:a + chunk])]
            idx = np.arange(plants * k)
            raw_index = np.concatenate([idx, idx])
        else:
            raw, raw_index = [], np.full(len(sid), -1)
        yield ReadingBatch(sid, tt, val, raw_index, raw, "bench")


def plant_ids(dbs):
    with dbs.main.connect() as conn:
        return [r[0] for r in conn.execute(text("SELECT id FROM assets WHERE kind = 'plant'"))]


def settle(engine):
    """Start a timed section with the database's write-ahead log flushed (SQLite: an
    empty WAL; PostgreSQL: a CHECKPOINT), so neither side pays for writing back the
    other's pages."""
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        else:
            conn.exec_driver_sql("CHECKPOINT")
            conn.commit()


def bare_insert(engine, all_rows):
    name = f"bench_bare_{uuid.uuid4().hex[:8]}"
    pg = engine.dialect.name == "postgresql"
    with engine.begin() as conn:
        conn.execute(text(f"CREATE TABLE {name} (series_id INTEGER NOT NULL, ts BIGINT NOT NULL, "
                          f"value DOUBLE PRECISION NOT NULL, raw_event_id BIGINT, PRIMARY KEY (series_id, ts))"
                          + (" PARTITION BY RANGE (ts)" if pg else "")))
        if pg:  # like readings: one partition per UTC year of the rows
            for year in sorted(partitions.years_of(np.array([r[1] for r in all_rows], np.int64))):
                a, b = partitions.year_bounds_utc(year)
                conn.execute(text(f"CREATE TABLE {name}_y{year} PARTITION OF {name} FOR VALUES FROM ({a}) TO ({b})"))
    tbl = readings.to_metadata(__import__("sqlalchemy").MetaData(), name=name)
    settle(engine)
    t0 = time.perf_counter()
    with engine.begin() as conn:
        bulk.insert_new(conn, tbl, ("series_id", "ts", "value", "raw_event_id"), all_rows)
    dt = time.perf_counter() - t0
    with engine.begin() as conn:
        conn.execute(text(f"DROP TABLE {name}"))
    return dt


def run_once(backend, args):
    """One round on a fresh database pair: (pipeline s, readings, bare s, rows, counts)."""
    tmp = Path(tempfile.mkdtemp(prefix="wl-bench-"))
    created = []
    if backend == "sqlite":
        dbs = open_databases(f"sqlite:///{tmp / 'main.db'}", f"sqlite:///{tmp / 'telemetry.db'}")
    else:
        admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
        base = PG_ADMIN.rsplit("/", 1)[0]
        for _ in range(2):
            name = f"wl_bench_{uuid.uuid4().hex[:8]}"
            with admin.connect() as c:
                c.execute(text(f"CREATE DATABASE {name}"))
            created.append(name)
        dbs = open_databases(f"{base}/{created[0]}", f"{base}/{created[1]}")
    try:
        upgrade_all(dbs.main, dbs.telemetry)
        ids = setup(dbs, args.series)
        ts, energy, power = make_data(args.series, args.readings)
        pipe = Pipeline(dbs.telemetry, dbs.main_reader)
        n = 0
        settle(dbs.telemetry)
        t0 = time.perf_counter()
        per_batch = args.summaries == "per-batch"
        for b in batches(ids, ts, energy, power, args.chunk, args.raw):
            pipe.ingest(b, refresh_summaries=per_batch)
            n += len(b)
        if not per_batch:  # once for the run, as the daily sync and the backfill do
            with dbs.telemetry.begin() as conn:
                rollup.refresh_summaries(conn, dbs.main_reader, {int(a) for a in plant_ids(dbs)})
        dt_pipe = time.perf_counter() - t0
        rows = []
        for b in batches(ids, ts, energy, power, args.chunk, False):
            rows.extend(zip(b.series_id.tolist(), b.ts.tolist(), b.value.tolist(), [None] * len(b)))
        dt_bare = bare_insert(dbs.telemetry, rows)
        with dbs.telemetry.connect() as c:
            counts = {t: c.execute(text(f"SELECT COUNT(*) FROM {t}")).scalar()
                      for t in ("readings", "ledger", "aggregates", "raw_events")}
        return dt_pipe, n, dt_bare, len(rows), counts
    finally:
        dbs.dispose()
        shutil.rmtree(tmp, ignore_errors=True)
        if created:
            with admin.connect() as c:
                for name in created:
                    c.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))


def run(backend, args):
    rounds = []
    for r in range(args.repeat):
        dt_pipe, n, dt_bare, n_rows, counts = run_once(backend, args)
        pr, br = n / dt_pipe, n_rows / dt_bare
        rounds.append((pr, br, pr / br))
        if args.repeat > 1:
            print(f"[{backend}] round {r + 1}: pipeline {pr:,.0f} readings/s, bare {br:,.0f} rows/s, "
                  f"ratio {pr / br:.3f}")
    pr, br, ratio = (statistics.median(x) for x in zip(*rounds))
    label = f"median of {args.repeat} rounds, " if args.repeat > 1 else ""
    print(f"[{backend}] readings={n:,} series={args.series} chunk={args.chunk} timestamps/batch raw={args.raw} "
          f"summaries={args.summaries}")
    print(f"[{backend}] pipeline: {label}{pr:,.0f} readings/s   rows written: "
          + ", ".join(f"{k}={v:,}" for k, v in counts.items()))
    print(f"[{backend}] bare bulk insert: {label}{br:,.0f} rows/s")
    print(f"[{backend}] ratio pipeline/bare: {ratio:.3f}  (target >= 0.5)")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--series", type=int, default=1000)
    ap.add_argument("--readings", type=int, default=1000, help="readings per series")
    ap.add_argument("--chunk", type=int, default=100, help="timestamps per batch")
    ap.add_argument("--backend", choices=("sqlite", "postgres", "both"), default="both")
    ap.add_argument("--raw", action="store_true", help="attach a raw vendor record to each plant reading")
    ap.add_argument("--summaries", choices=("end", "per-batch"), default="end",
                    help="refresh plant/work-order summaries once after the run, as the daily sync and "
                         "the backfill do (default), or inside every batch, as live polling does")
    ap.add_argument("--repeat", type=int, default=1,
                    help="rounds on fresh databases; rates and ratio are the medians (this machine's "
                         "timings vary by +-20 %% run to run)")
    args = ap.parse_args()
    for backend in (("sqlite", "postgres") if args.backend == "both" else (args.backend,)):
        run(backend, args)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak memory (max RSS): {peak_mb:,.0f} MB")
    sys.stdout.flush()


if __name__ == "__main__":
    main()

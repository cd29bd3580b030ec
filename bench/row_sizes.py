"""Bytes per reading (with its ledger entry), per bucket row and per raw event on PostgreSQL.

    .venv/bin/python bench/row_sizes.py [--series 1000] [--readings 1000] [--raw]

Loads a known number of readings through the pipeline (the data of ``bench/pipeline.py``:
energy counter + power per plant, 15-minute readings) into a fresh telemetry database on
the shared server, VACUUMs, and prints ``pg_total_relation_size`` (heap + indexes + TOAST)
of each telemetry table divided by its rows. Baseline in the same run: the bare
(series_id, ts, value, raw_event_id) rows COPYed into a table with the same primary key.
A ledger entry rides on its reading's row (README, Design), so the readings figure is
"per reading incl. its ledger entry".
"""

from __future__ import annotations

import argparse
import sys
import uuid
from pathlib import Path

from sqlalchemy import MetaData, create_engine, text

sys.path.insert(0, str(Path(__file__).resolve().parent))
import pipeline as pb  # noqa: E402  (bench/pipeline.py: the same data and set-up)

from wattline.pipeline import Pipeline, rollup  # noqa: E402
from wattline.store import bulk  # noqa: E402
from wattline.store.engines import open_databases  # noqa: E402
from wattline.store.migrate import upgrade_all  # noqa: E402
from wattline.store.tables import readings  # noqa: E402


def total_size(conn, table: str) -> int:
    """Heap + indexes + TOAST, summed over partitions for a partitioned table."""
    return conn.execute(text(
        "SELECT COALESCE(SUM(pg_total_relation_size(c.oid)), 0) FROM pg_class c "
        "WHERE c.oid = CAST(:t AS regclass) OR c.oid IN "
        "(SELECT inhrelid FROM pg_inherits WHERE inhparent = CAST(:t AS regclass))"), {"t": table}).scalar()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--series", type=int, default=1000)
    ap.add_argument("--readings", type=int, default=1000, help="readings per series")
    ap.add_argument("--chunk", type=int, default=100)
    ap.add_argument("--raw", action="store_true", help="attach a vendor-like raw JSON record per plant reading")
    args = ap.parse_args()
    admin = create_engine(pb.PG_ADMIN, isolation_level="AUTOCOMMIT")
    base = pb.PG_ADMIN.rsplit("/", 1)[0]
    names = [f"wl_rowsize_{uuid.uuid4().hex[:8]}" for _ in range(2)]
    with admin.connect() as c:
        for n in names:
            c.execute(text(f"CREATE DATABASE {n}"))
    dbs = open_databases(f"{base}/{names[0]}", f"{base}/{names[1]}")
    try:
        upgrade_all(dbs.main, dbs.telemetry)
        ids = pb.setup(dbs, args.series)
        ts, energy, power = pb.make_data(args.series, args.readings)
        pipe = Pipeline(dbs.telemetry, dbs.main_reader)
        for b in pb.batches(ids, ts, energy, power, args.chunk, args.raw):
            pipe.ingest(b, refresh_summaries=False)
        with dbs.telemetry.begin() as conn:
            rollup.refresh_summaries(conn, dbs.main_reader, {int(a) for a in pb.plant_ids(dbs)})
        rows = []
        for b in pb.batches(ids, ts, energy, power, args.chunk, False):
            rows.extend(zip(b.series_id.tolist(), b.ts.tolist(), b.value.tolist(), [None] * len(b)))
        with dbs.telemetry.begin() as conn:
            conn.execute(text("CREATE TABLE bench_bare (series_id INTEGER NOT NULL, ts BIGINT NOT NULL, "
                              "value DOUBLE PRECISION NOT NULL, raw_event_id BIGINT, PRIMARY KEY (series_id, ts))"))
            bulk.insert_new(conn, readings.to_metadata(MetaData(), name="bench_bare"),
                            ("series_id", "ts", "value", "raw_event_id"), rows)
        tel = dbs.telemetry.execution_options(isolation_level="AUTOCOMMIT")
        with tel.connect() as conn:
            conn.exec_driver_sql("VACUUM ANALYZE")
            tables = conn.execute(text(
                "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND NOT c.relispartition "
                "ORDER BY 1")).scalars().all()
            print(f"readings loaded: {len(rows):,} ({args.series} series x {args.readings}, 15-min, raw={args.raw})")
            print(f"{'table':<28}{'rows':>12}{'total bytes':>16}{'bytes/row':>12}{'heap bytes/row':>16}")
            for t in tables:
                n = conn.execute(text(f'SELECT COUNT(*) FROM "{t}"')).scalar()
                if not n:
                    continue
                size = total_size(conn, t)
                heap = conn.execute(text(
                    "SELECT COALESCE(SUM(pg_relation_size(c.oid)), 0) FROM pg_class c WHERE c.oid = CAST(:t AS regclass) "
                    "OR c.oid IN (SELECT inhrelid FROM pg_inherits WHERE inhparent = CAST(:t AS regclass))"),
                    {"t": t}).scalar()
                print(f"{t:<28}{n:>12,}{size:>16,}{size / n:>12.1f}{heap / n:>16.1f}")
            print("(bench_bare: the baseline, the same rows COPYed into (series_id, ts, value, raw_event_id) "
                  "with the same primary key)")
    finally:
        dbs.dispose()
        with admin.connect() as c:
            for n in names:
                c.execute(text(f"DROP DATABASE IF EXISTS {n} WITH (FORCE)"))


if __name__ == "__main__":
    main()

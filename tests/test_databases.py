"""The two databases: migrations, the read-only registry handle, credentials at rest."""

from __future__ import annotations

import numpy as np
import pytest
import sqlalchemy as sa
from sqlalchemy import exc as sa_exc

from wattline.store.migrate import upgrade_all


def test_pipeline_handle_on_main_cannot_write(dbs):
    with dbs.main.begin() as conn:
        conn.execute(sa.text("INSERT INTO organizations (name) VALUES ('owner')"))
    with pytest.raises((sa_exc.OperationalError, sa_exc.InternalError, sa_exc.DBAPIError)):
        with dbs.main_reader.begin() as conn:
            conn.execute(sa.text("INSERT INTO organizations (name) VALUES ('intruder')"))
    with dbs.main.connect() as conn:
        assert conn.execute(sa.text("SELECT COUNT(*) FROM organizations WHERE name = 'intruder'")).scalar() == 0
    with dbs.main_reader.connect() as conn:  # but it can read, and sees what main wrote
        assert conn.execute(sa.text("SELECT name FROM organizations")).scalars().all() == ["owner"]


def test_migrations_are_idempotent_and_create_the_seed_tables(dbs):
    upgrade_all(dbs.main, dbs.telemetry)
    tel = sa.inspect(dbs.telemetry)
    assert {"readings", "raw_events", "aggregates", "plant_aggregates", "work_order_aggregates",
            "vendor_sync_logs", "quarantined_readings"} <= set(tel.get_table_names())
    assert {"telemetry_15m", "ledger"} <= set(tel.get_view_names())
    cols = [c["name"] for c in tel.get_columns("telemetry_15m")]
    assert cols == ["ts", "plant_id", "vendor_plant_id", "total_energy_mwh", "power_kw", "raw"]
    main = sa.inspect(dbs.main)
    assert {"organizations", "vendor_accounts", "assets", "points", "groups", "group_members"} <= set(
        main.get_table_names())


def test_raw_payloads_are_kept_verbatim_and_deduplicated(dbs, pipeline):
    import numpy as np

    from helpers import new_series
    from wattline.domain.readings import ReadingBatch

    sid = new_series(dbs)
    raw = [{"lastUpdateTime": 1763468017.0, "generationUploadTotalOffset": 50000.5}, '{"b": 1,  "a": 2}']
    b = ReadingBatch(np.array([sid, sid]), np.array([1000 * 900, 1001 * 900]), np.array([1.0, 2.0]),
                     np.array([0, 1]), raw, "test")
    pipeline.ingest(b)
    pipeline.ingest(b)
    with dbs.telemetry.connect() as c:
        payloads = sorted(r[0] for r in c.exec_driver_sql("SELECT payload FROM raw_events"))
        links = c.exec_driver_sql(
            f"SELECT COUNT(*) FROM readings r JOIN raw_events e ON e.id = r.raw_event_id WHERE r.series_id={sid}"
        ).scalar()
    assert payloads == sorted(['{"b": 1,  "a": 2}',
                               '{"generationUploadTotalOffset":50000.5,"lastUpdateTime":1763468017.0}'])
    assert links == 2


def test_explicit_ids_do_not_collide_with_later_automatic_ones(dbs):
    from wattline.store import registry

    with dbs.main.begin() as conn:
        registry.add_asset(conn, "seed plant", "plant", "UTC", asset_id=2)
        registry.add_group(conn, "WO", "work_order", [2], group_id=3)
        ids = [registry.add_asset(conn, f"auto {i}", "meter", "UTC") for i in range(3)]
        g = registry.add_group(conn, "WO 2", "work_order", ids)
    assert len(set(ids)) == 3 and 2 not in ids and g != 3


def test_a_batch_with_a_bad_raw_link_or_unknown_series_is_refused_whole(dbs, pipeline):
    import numpy as np
    import pytest

    from helpers import new_series
    from wattline.domain.readings import ReadingBatch
    from wattline.pipeline.series import UnknownSeriesError

    sid = new_series(dbs)
    with pytest.raises(ValueError, match="raw_index"):
        pipeline.ingest(ReadingBatch(np.array([sid]), np.array([900]), np.array([1.0]), np.array([3]), [{}], "t"))
    with pytest.raises(UnknownSeriesError):
        pipeline.ingest(ReadingBatch(np.array([sid, 10**6]), np.array([900, 900]), np.array([1.0, 1.0]),
                                     np.array([-1, -1]), [], "t"))
    with dbs.telemetry.connect() as c:
        assert c.exec_driver_sql("SELECT COUNT(*) FROM readings").scalar() == 0


def test_migration_0004_moves_ledger_entries_onto_their_readings(tmp_path, request):
    """A database from before 0004 keeps every ledger entry through the upgrade."""
    from wattline.store.engines import make_engine
    from wattline.store.migrate import upgrade

    engine = make_engine(f"sqlite:///{tmp_path / 'old.db'}")
    upgrade(engine, "telemetry", "0003")
    with engine.begin() as c:
        c.execute(sa.text("INSERT INTO readings (series_id, ts, value) VALUES (1, 900, 1.0), (1, 1800, 2.5)"))
        c.execute(sa.text("INSERT INTO ledger (series_id, end_ts, start_ts, delta_milli_wh, method, confidence, "
                          "flags, ref_milli_wh) VALUES (1, 1800, 900, 1500000, 1, 1.0, 0, 2500000)"))
    upgrade(engine, "telemetry")
    with engine.connect() as c:
        rows = c.execute(sa.text("SELECT ts, start_ts, delta_milli_wh, ref_milli_wh FROM readings ORDER BY ts")).all()
        view = c.execute(sa.text("SELECT series_id, end_ts, delta_milli_wh FROM ledger")).all()
    assert rows == [(900, None, None, None), (1800, 900, 1500000, 2500000)]
    assert view == [(1, 1800, 1500000)]
    engine.dispose()


def test_an_insert_in_the_helper_thread_fails_the_batch_and_writes_nothing(dbs):
    """bulk.inserting_new: the body runs while the rows are inserted; an error of the
    insert (here a duplicate key) reaches the caller and the transaction rolls back."""
    from wattline.store import bulk
    from wattline.store.partitions import ReadingPartitions
    from wattline.store.tables import readings

    ReadingPartitions(dbs.telemetry).ensure(np.array([100, 200]))  # PostgreSQL: the 1970 partition
    body_ran = []
    with pytest.raises(Exception) as err:  # the driver's own error: the insert bypasses SQLAlchemy
        with dbs.telemetry.begin() as conn:
            conn.exec_driver_sql("INSERT INTO readings (series_id, ts, value) VALUES (1, 100, 1.0)")
            rows = iter([(1, 200, 2.0), (1, 100, 3.0)])  # the second already exists
            with bulk.inserting_new(conn, readings, ("series_id", "ts", "value"), rows):
                body_ran.append(True)
    assert body_ran == [True]
    assert "unique" in str(err.value).lower() or "duplicate" in str(err.value).lower()
    with dbs.telemetry.connect() as conn:
        assert conn.exec_driver_sql("SELECT COUNT(*) FROM readings").scalar() == 0


def test_postgres_readings_are_partitioned_by_utc_year(dbs):
    """Readings of three years land in three yearly partitions, created on arrival;
    a second pipeline (another process) finds them and creates none twice."""
    if dbs.telemetry.dialect.name != "postgresql":
        pytest.skip("SQLite has no partitions")
    from helpers import batch, new_series
    from wattline.pipeline import Pipeline

    sid = new_series(dbs)
    ts = [1_703_980_800, 1_704_067_200 - 900, 1_704_067_200, 1_735_689_600 + 900]  # 2023-12-31 .. 2025
    Pipeline(dbs.telemetry, dbs.main_reader).ingest(batch(sid, ts, [1.0, 2.0, 3.0, 4.0]))
    Pipeline(dbs.telemetry, dbs.main_reader).ingest(batch(sid, [1_735_689_600 + 1800], [5.0]))
    with dbs.telemetry.connect() as conn:
        rows = conn.exec_driver_sql(
            "SELECT tableoid::regclass::text, COUNT(*) FROM readings GROUP BY 1 ORDER BY 1").fetchall()
        kind = conn.exec_driver_sql("SELECT relkind FROM pg_class WHERE relname = 'readings'").scalar()
        entries = conn.exec_driver_sql("SELECT COUNT(*) FROM ledger").scalar()
    assert kind == "p"  # a partitioned table
    assert [tuple(r) for r in rows] == [("readings_y2023", 2), ("readings_y2024", 1), ("readings_y2025", 2)]
    assert entries == 4  # the ledger runs across the partitions

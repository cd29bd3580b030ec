"""readings partitioned by year on PostgreSQL

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-24 14:00:00

PostgreSQL only (SQLite has no partitions): ``readings`` becomes a table partitioned
by range of ``ts``, one partition per UTC year (store/partitions.py creates new years
as data arrives). Existing rows are moved; the views over readings are recreated.
"""

from datetime import datetime, timezone

from alembic import op


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None

# frozen copies of the views as 0001 and 0004 created them (PostgreSQL forms)
LEDGER_VIEW = """
    CREATE VIEW ledger AS
    SELECT series_id, ts AS end_ts, start_ts, delta_milli_wh, method, confidence, flags, ref_milli_wh
    FROM readings WHERE delta_milli_wh IS NOT NULL
"""
TELEMETRY_15M_VIEW = """
    CREATE VIEW telemetry_15m AS
    SELECT to_timestamp(e.ts) AS ts,
           s.asset_id AS plant_id,
           COALESCE(s.vendor_plant_id, '') AS vendor_plant_id,
           e.value / 1000.0 AS total_energy_mwh,
           p.value AS power_kw,
           CAST(COALESCE(r.payload, '{}') AS JSONB) AS raw
    FROM readings e
    JOIN series_info s ON s.series_id = e.series_id AND s.point_key = 'energy_total'
    LEFT JOIN series_info sp ON sp.asset_id = s.asset_id AND sp.point_key = 'power'
    LEFT JOIN readings p ON p.series_id = sp.series_id AND p.ts = e.ts
    LEFT JOIN raw_events r ON r.id = e.raw_event_id
"""


def _swap(partitioned: bool) -> None:
    op.execute("DROP VIEW IF EXISTS telemetry_15m")
    op.execute("DROP VIEW IF EXISTS ledger")
    op.execute("ALTER TABLE readings RENAME TO readings_old")
    op.execute("ALTER INDEX readings_pkey RENAME TO readings_old_pkey")
    op.execute("CREATE TABLE readings (LIKE readings_old INCLUDING DEFAULTS)"
               + (" PARTITION BY RANGE (ts)" if partitioned else ""))
    op.execute("ALTER TABLE readings ADD CONSTRAINT readings_pkey PRIMARY KEY (series_id, ts)")
    if partitioned:
        years = [r[0] for r in op.get_bind().exec_driver_sql(
            "SELECT DISTINCT CAST(EXTRACT(YEAR FROM to_timestamp(ts) AT TIME ZONE 'UTC') AS INTEGER) "
            "FROM readings_old")]
        for y in years:
            a, b = (int(datetime(x, 1, 1, tzinfo=timezone.utc).timestamp()) for x in (y, y + 1))
            op.execute(f"CREATE TABLE readings_y{y} PARTITION OF readings FOR VALUES FROM ({a}) TO ({b})")
    op.execute("INSERT INTO readings SELECT * FROM readings_old")
    op.execute("DROP TABLE readings_old")
    op.execute(LEDGER_VIEW)
    op.execute(TELEMETRY_15M_VIEW)


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        _swap(partitioned=True)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        _swap(partitioned=False)


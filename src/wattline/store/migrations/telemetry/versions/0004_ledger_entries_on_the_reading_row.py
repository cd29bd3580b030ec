"""ledger entries on the reading row

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24 10:38:06.864270
"""

from alembic import op
import sqlalchemy as sa


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


COLUMNS = ("start_ts", "delta_milli_wh", "method", "confidence", "flags", "ref_milli_wh")
LEDGER_VIEW = """
    CREATE VIEW ledger AS
    SELECT series_id, ts AS end_ts, start_ts, delta_milli_wh, method, confidence, flags, ref_milli_wh
    FROM readings WHERE delta_milli_wh IS NOT NULL
"""


def upgrade() -> None:
    # plain ALTER TABLE ADD COLUMN (no table rebuild): the telemetry_15m view stays valid
    for name, type_ in (("start_ts", sa.BigInteger()), ("delta_milli_wh", sa.BigInteger()),
                        ("method", sa.SmallInteger()), ("confidence", sa.Float()),
                        ("flags", sa.Integer()), ("ref_milli_wh", sa.BigInteger())):
        op.add_column("readings", sa.Column(name, type_, nullable=True))
    # move every ledger entry onto the reading it ends at
    if op.get_bind().dialect.name == "postgresql":
        op.execute("UPDATE readings r SET " + ", ".join(f"{c} = l.{c}" for c in COLUMNS)
                   + " FROM ledger l WHERE l.series_id = r.series_id AND l.end_ts = r.ts")
    else:
        op.execute("UPDATE readings SET (" + ", ".join(COLUMNS) + ") = (SELECT " + ", ".join(f"l.{c}" for c in COLUMNS)
                   + " FROM ledger l WHERE l.series_id = readings.series_id AND l.end_ts = readings.ts)"
                   " WHERE EXISTS (SELECT 1 FROM ledger l WHERE l.series_id = readings.series_id"
                   " AND l.end_ts = readings.ts)")
    op.drop_table("ledger")
    op.execute(LEDGER_VIEW)


def downgrade() -> None:
    op.execute("DROP VIEW IF EXISTS ledger")
    op.create_table(
        "ledger",
        sa.Column("series_id", sa.Integer(), nullable=False),
        sa.Column("end_ts", sa.BigInteger(), nullable=False),
        sa.Column("start_ts", sa.BigInteger(), nullable=False),
        sa.Column("delta_milli_wh", sa.BigInteger(), nullable=False),
        sa.Column("method", sa.SmallInteger(), nullable=False),
        sa.Column("confidence", sa.Float(), nullable=False),
        sa.Column("flags", sa.Integer(), nullable=False),
        sa.Column("ref_milli_wh", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("series_id", "end_ts"),
    )
    op.execute("INSERT INTO ledger SELECT series_id, ts, " + ", ".join(COLUMNS)
               + " FROM readings WHERE delta_milli_wh IS NOT NULL")
    for name in reversed(COLUMNS):
        op.drop_column("readings", name)

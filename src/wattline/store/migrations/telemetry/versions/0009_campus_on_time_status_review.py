"""campus: on-time and quality on ledger entries and buckets, controller status, review items

* ``readings.on_time_s``: the seconds of a ledger entry's interval with the device's
  switch on (NULL: the series has no switch, or its state is unknown).
* ``aggregates.on_time_s`` and ``aggregates.hc_energy_milli_wh``: per bucket, the
  switch-on seconds and the energy from high-confidence entries (metered, no gap),
  so ``estimated = energy - hc_energy``.
* ``controller_status``: per ESP32 controller, its last status (the retained
  online/offline of its Last Will), its last heartbeat and its last telemetry;
  ``controller_status_events``: every status change, for the device page's history.
* ``review_items``: what reconciliation found and could not fix safely.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 01:00:00
"""

from alembic import op
import sqlalchemy as sa


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None

LEDGER_VIEW = """
    CREATE VIEW ledger AS
    SELECT series_id, ts AS end_ts, start_ts, delta_milli_wh, method, confidence, flags, ref_milli_wh, on_time_s
    FROM readings WHERE delta_milli_wh IS NOT NULL
"""
OLD_LEDGER_VIEW = """
    CREATE VIEW ledger AS
    SELECT series_id, ts AS end_ts, start_ts, delta_milli_wh, method, confidence, flags, ref_milli_wh
    FROM readings WHERE delta_milli_wh IS NOT NULL
"""


def upgrade() -> None:
    # plain ADD COLUMN (no table rebuild): the views over readings stay valid
    op.add_column("readings", sa.Column("on_time_s", sa.Integer(), nullable=True))
    op.add_column("aggregates", sa.Column("on_time_s", sa.BigInteger(), nullable=True))
    op.add_column("aggregates", sa.Column("hc_energy_milli_wh", sa.BigInteger(), nullable=True))
    op.execute("DROP VIEW IF EXISTS ledger")
    op.execute(LEDGER_VIEW)
    op.create_table(
        'controller_status',
        sa.Column('organization_id', sa.Integer(), nullable=False, autoincrement=False),
        sa.Column('esp32_name', sa.String(length=64), nullable=False),
        sa.Column('status', sa.String(length=10), nullable=True),  # online | offline
        sa.Column('status_at', sa.BigInteger(), nullable=True),  # when the status arrived, UTC epoch s
        sa.Column('last_heartbeat_at', sa.BigInteger(), nullable=True),
        sa.Column('last_telemetry_at', sa.BigInteger(), nullable=True),
        sa.Column('details', sa.JSON(), nullable=True),  # last heartbeat: firmware, rssi, uptime...
        sa.PrimaryKeyConstraint('organization_id', 'esp32_name'),
    )
    op.create_table(
        'controller_status_events',
        sa.Column('organization_id', sa.Integer(), nullable=False, autoincrement=False),
        sa.Column('esp32_name', sa.String(length=64), nullable=False),
        sa.Column('ts', sa.BigInteger(), nullable=False, autoincrement=False),  # arrival, UTC epoch s
        sa.Column('status', sa.String(length=10), nullable=False),
        sa.Column('raw_event_id', sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint('organization_id', 'esp32_name', 'ts', 'status'),
    )
    op.create_table(
        'review_items',
        sa.Column('id', sa.Integer(), primary_key=True),
        sa.Column('organization_id', sa.Integer(), nullable=False),
        # what reconciliation found: missing_heartbeat | gap | out_of_order |
        # energy_while_off | aggregate_mismatch | unknown_device | ...
        sa.Column('kind', sa.String(length=40), nullable=False),
        sa.Column('asset_id', sa.Integer(), nullable=True),
        sa.Column('classroom_id', sa.Integer(), nullable=True),
        sa.Column('esp32_name', sa.String(length=64), nullable=True),
        sa.Column('period_start', sa.BigInteger(), nullable=False),  # UTC epoch s
        sa.Column('period_end', sa.BigInteger(), nullable=False),
        sa.Column('details', sa.JSON(), nullable=True),
        sa.Column('status', sa.String(length=10), nullable=False, server_default='open'),  # open | resolved
        sa.Column('created_at', sa.BigInteger(), nullable=False),
        sa.Column('resolved_at', sa.BigInteger(), nullable=True),
        sa.Column('resolved_by', sa.String(length=120), nullable=True),
        sa.Column('resolution', sa.Text(), nullable=True),
        # one item per finding: a second reconciliation of the same night finds it again
        sa.Column('dedup_key', sa.String(length=200), nullable=False, unique=True),
    )
    op.create_index('ix_review_items_org_status', 'review_items', ['organization_id', 'status', 'kind'])


def downgrade() -> None:
    op.drop_index('ix_review_items_org_status', table_name='review_items')
    op.drop_table('review_items')
    op.drop_table('controller_status_events')
    op.drop_table('controller_status')
    op.execute("DROP VIEW IF EXISTS ledger")
    op.execute(OLD_LEDGER_VIEW)
    with op.batch_alter_table('aggregates') as batch:
        batch.drop_column('hc_energy_milli_wh')
        batch.drop_column('on_time_s')
    op.drop_column("readings", "on_time_s")

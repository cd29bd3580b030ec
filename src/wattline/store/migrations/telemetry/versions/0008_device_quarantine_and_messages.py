"""device quarantine and device message identities

``device_quarantine``: device messages kept out of the ledger with the reason (an
unknown device, replayed once it is registered; a device clock far ahead; an
invalid document). ``device_messages``: the (sequence number, uptime) identity of
every device message taken in, so a redelivered message is recognised.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01 22:45:00
"""

from alembic import op
import sqlalchemy as sa


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'device_quarantine',
        sa.Column('organization_id', sa.Integer(), nullable=False, autoincrement=False),
        sa.Column('raw_event_id', sa.BigInteger(), nullable=False, autoincrement=False),
        sa.Column('kind', sa.String(length=20), nullable=False),
        sa.Column('reason', sa.String(length=300), nullable=False),
        sa.Column('esp32_name', sa.String(length=64), nullable=True),
        sa.Column('device_id', sa.String(length=64), nullable=True),
        sa.Column('source', sa.String(length=80), nullable=False),
        sa.Column('received_at', sa.BigInteger(), nullable=False),
        sa.Column('replayed_at', sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint('organization_id', 'raw_event_id'),
    )
    op.create_index('ix_device_quarantine_device', 'device_quarantine',
                    ['organization_id', 'esp32_name', 'device_id'])
    op.create_table(
        'device_messages',
        sa.Column('asset_id', sa.Integer(), nullable=False, autoincrement=False),
        sa.Column('sequence_no', sa.BigInteger(), nullable=False, autoincrement=False),
        sa.Column('uptime_s', sa.BigInteger(), nullable=False, autoincrement=False),
        sa.Column('ts', sa.BigInteger(), nullable=False, autoincrement=False),
        sa.Column('raw_event_id', sa.BigInteger(), nullable=True),
        sa.Column('received_at', sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint('asset_id', 'sequence_no', 'uptime_s', 'ts'),
    )


def downgrade() -> None:
    op.drop_table('device_messages')
    op.drop_index('ix_device_quarantine_device', table_name='device_quarantine')
    op.drop_table('device_quarantine')

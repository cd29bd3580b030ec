"""poll sessions (seed 003 ``sessions``) and each system's polling health

Numbered 0018 for issue 11 (the numbers between belong to work merged in parallel);
``down_revision`` is re-chained at merge.

Revision ID: 0018
Revises: 0009
Create Date: 2026-12-02 02:00:00
"""

from alembic import op
import sqlalchemy as sa


revision = '0018'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'sessions',
        sa.Column('id', sa.Integer(), primary_key=True),
        sa.Column('system_id', sa.Integer(), nullable=False),
        sa.Column('vendor_type', sa.String(40), nullable=False),
        sa.Column('cause', sa.String(10), nullable=False),
        sa.Column('started_at_ms', sa.BigInteger(), nullable=False),
        sa.Column('duration_ms', sa.Integer(), nullable=False),
        sa.Column('success', sa.Boolean(), nullable=False),
        sa.Column('vendor_error_code', sa.String(40), nullable=True),
        sa.Column('error', sa.Text(), nullable=True),
        sa.Column('num_readings', sa.Integer(), nullable=False, server_default='0'),
        sa.Column('raw_event_id', sa.BigInteger(), nullable=True),
    )
    op.create_index('ix_sessions_system_started', 'sessions', ['system_id', 'started_at_ms'])
    op.create_index('ix_sessions_started', 'sessions', ['started_at_ms'])
    op.create_table(
        'system_poll_state',
        sa.Column('system_id', sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column('consecutive_failures', sa.Integer(), nullable=False, server_default='0'),
        sa.Column('last_poll_ms', sa.BigInteger(), nullable=True),
        sa.Column('last_success_ms', sa.BigInteger(), nullable=True),
        sa.Column('last_error', sa.Text(), nullable=True),
        sa.Column('skipped_overruns', sa.Integer(), nullable=False, server_default='0'),
        sa.Column('polling_until_ms', sa.BigInteger(), nullable=True),
    )


def downgrade() -> None:
    op.drop_table('system_poll_state')
    op.drop_index('ix_sessions_started', table_name='sessions')
    op.drop_index('ix_sessions_system_started', table_name='sessions')
    op.drop_table('sessions')

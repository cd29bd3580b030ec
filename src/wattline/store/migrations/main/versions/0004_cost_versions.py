"""cost versions

A rate per kWh (integer micro-units of the currency) in effect from an instant on,
for a scope: global, an organization, a group or an asset (domain/cost.py).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 22:50:00
"""

from alembic import op
import sqlalchemy as sa


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'cost_versions',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('cost_per_kwh_micro', sa.BigInteger(), nullable=False),
        sa.Column('currency', sa.String(length=3), nullable=False),
        sa.Column('effective_from', sa.BigInteger(), nullable=False),
        sa.Column('scope', sa.String(length=20), nullable=False),
        sa.Column('scope_id', sa.Integer(), nullable=True),
        sa.Column('notes', sa.Text(), nullable=True),
        sa.Column('created_by', sa.String(length=120), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('(CURRENT_TIMESTAMP)'),
                  nullable=False),
        sa.CheckConstraint('cost_per_kwh_micro >= 0', name='ck_cost_versions_rate'),
        sa.CheckConstraint("scope IN ('global', 'organization', 'group', 'asset')", name='ck_cost_versions_scope'),
        sa.CheckConstraint("(scope = 'global' AND scope_id IS NULL) OR (scope <> 'global' AND scope_id IS NOT NULL)",
                           name='ck_cost_versions_scope_id'),
        sa.PrimaryKeyConstraint('id'),
    )
    with op.batch_alter_table('cost_versions', schema=None) as batch_op:
        batch_op.create_index('ix_cost_versions_scope', ['scope', 'scope_id', 'effective_from'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('cost_versions', schema=None) as batch_op:
        batch_op.drop_index('ix_cost_versions_scope')
    op.drop_table('cost_versions')

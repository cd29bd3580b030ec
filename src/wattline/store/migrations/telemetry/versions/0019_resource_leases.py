"""resource leases (one worker at a time on a plant), and the holder of a system's claim

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-02 18:00:00
"""

from alembic import op
import sqlalchemy as sa


revision = '0019'
down_revision = '0018'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'resource_leases',
        sa.Column('resource', sa.String(100), primary_key=True),
        sa.Column('holder', sa.String(100), nullable=False),
        sa.Column('expires_ms', sa.BigInteger(), nullable=False),
    )
    op.create_index('ix_resource_leases_holder', 'resource_leases', ['holder'])
    with op.batch_alter_table('system_poll_state') as batch:
        batch.add_column(sa.Column('lease_holder', sa.String(100), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('system_poll_state') as batch:
        batch.drop_column('lease_holder')
    op.drop_index('ix_resource_leases_holder', table_name='resource_leases')
    op.drop_table('resource_leases')

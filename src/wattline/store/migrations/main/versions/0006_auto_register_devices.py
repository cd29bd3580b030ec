"""organizations: auto-register unknown devices

When set, a message from a device the registry does not know registers it (in the
classroom its payload names, created if needed) instead of quarantining it.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 01:00:00
"""

from alembic import op
import sqlalchemy as sa


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('organizations', sa.Column('auto_register_devices', sa.Boolean(), nullable=False,
                                             server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table('organizations') as batch:
        batch.drop_column('auto_register_devices')

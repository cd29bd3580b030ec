"""group timezone

A group's roll-up periods (daily bars, months, years) are those of its own zone;
NULL means its organization's.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 21:50:00
"""

from alembic import op
import sqlalchemy as sa


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('groups', schema=None) as batch_op:
        batch_op.add_column(sa.Column('timezone', sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('groups', schema=None) as batch_op:
        batch_op.drop_column('timezone')

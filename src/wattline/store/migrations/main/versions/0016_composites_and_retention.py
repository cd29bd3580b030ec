"""composites (seed 003): owner, description, favourite, member order; raw retention

* ``groups``: ``owner_user_id`` (a composite's owner; NULL for other kinds),
  ``description``, ``favourite``.
* ``group_members.position``: the order of a composite's members (0 first).
* ``organizations.raw_retention_days``: raw point readings older than this are deleted
  by the weekly cleanup (daily aggregates are kept); NULL keeps everything.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-02 05:20:00
"""

from alembic import op
import sqlalchemy as sa


revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('groups') as batch:
        batch.add_column(sa.Column('owner_user_id', sa.Integer(), nullable=True))
        batch.add_column(sa.Column('description', sa.Text(), nullable=True))
        batch.add_column(sa.Column('favourite', sa.Boolean(), nullable=False, server_default=sa.false()))
        batch.create_foreign_key('fk_groups_owner_user', 'users', ['owner_user_id'], ['id'])
    with op.batch_alter_table('group_members') as batch:
        batch.add_column(sa.Column('position', sa.Integer(), nullable=False, server_default='0'))
    with op.batch_alter_table('organizations') as batch:
        batch.add_column(sa.Column('raw_retention_days', sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('organizations') as batch:
        batch.drop_column('raw_retention_days')
    with op.batch_alter_table('group_members') as batch:
        batch.drop_column('position')
    with op.batch_alter_table('groups') as batch:
        batch.drop_constraint('fk_groups_owner_user', type_='foreignkey')
        for name in ('favourite', 'description', 'owner_user_id'):
            batch.drop_column(name)

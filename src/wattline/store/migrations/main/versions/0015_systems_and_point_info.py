"""systems (seed 003): owner, alias, default, status; shares; point_info fields; transform versions

* ``points``: subsystem, point_type, label, display_order, visible, active (seed 003
  ``point_info``).
* ``systems``: the system facts of an asset of kind ``system``; ``system_shares``.
* ``point_transforms``: a point's transform versions, each from ``effective_from`` on.
* ``groups.slug``: a composite's URL name.

Numbered 0015 for issue 11 (the numbers between belong to work merged in parallel);
``down_revision`` is re-chained at merge.

Revision ID: 0015
Revises: 0006
Create Date: 2026-12-02 02:00:00
"""

from alembic import op
import sqlalchemy as sa


revision = '0015'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('points') as batch:
        batch.add_column(sa.Column('subsystem', sa.String(20), nullable=True))
        batch.add_column(sa.Column('point_type', sa.String(20), nullable=True))
        batch.add_column(sa.Column('label', sa.String(120), nullable=True))
        batch.add_column(sa.Column('display_order', sa.Integer(), nullable=False, server_default='0'))
        batch.add_column(sa.Column('visible', sa.Boolean(), nullable=False, server_default=sa.true()))
        batch.add_column(sa.Column('active', sa.Boolean(), nullable=False, server_default=sa.true()))
    with op.batch_alter_table('groups') as batch:
        batch.add_column(sa.Column('slug', sa.String(64), nullable=True))
    op.create_table(
        'systems',
        sa.Column('asset_id', sa.Integer(), sa.ForeignKey('assets.id'), primary_key=True, autoincrement=False),
        sa.Column('owner_user_id', sa.Integer(), sa.ForeignKey('users.id'), nullable=False),
        sa.Column('display_name', sa.String(200), nullable=False),
        sa.Column('alias', sa.String(64), nullable=False),
        sa.Column('is_default', sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column('status', sa.String(10), nullable=False, server_default='active'),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.UniqueConstraint('owner_user_id', 'alias', name='uq_systems_owner_alias'),
    )
    op.create_index('uq_systems_one_default', 'systems', ['owner_user_id'], unique=True,
                    sqlite_where=sa.text('is_default = 1'), postgresql_where=sa.text('is_default'))
    op.create_table(
        'system_shares',
        sa.Column('system_id', sa.Integer(), sa.ForeignKey('systems.asset_id'), primary_key=True,
                  autoincrement=False),
        sa.Column('user_id', sa.Integer(), sa.ForeignKey('users.id'), primary_key=True, autoincrement=False),
        sa.Column('granted_by', sa.String(120), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )
    op.create_index('ix_system_shares_user', 'system_shares', ['user_id'])
    op.create_table(
        'point_transforms',
        sa.Column('point_id', sa.Integer(), sa.ForeignKey('points.id'), primary_key=True, autoincrement=False),
        sa.Column('effective_from', sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column('transform', sa.JSON(), nullable=False),
        sa.Column('created_by', sa.String(120), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )


def downgrade() -> None:
    op.drop_table('point_transforms')
    op.drop_index('ix_system_shares_user', table_name='system_shares')
    op.drop_table('system_shares')
    op.drop_index('uq_systems_one_default', table_name='systems')
    op.drop_table('systems')
    with op.batch_alter_table('groups') as batch:
        batch.drop_column('slug')
    with op.batch_alter_table('points') as batch:
        for name in ('active', 'visible', 'display_order', 'label', 'point_type', 'subsystem'):
            batch.drop_column(name)

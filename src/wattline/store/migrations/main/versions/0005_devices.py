"""campus devices

A metered device (asset of kind ``device``) as its controller names it: (ESP32
name, device id) unique per organization, its classroom, the switch feeding it and
its energy method.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 22:45:00
"""

from alembic import op
import sqlalchemy as sa


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'devices',
        sa.Column('asset_id', sa.Integer(), sa.ForeignKey('assets.id'), nullable=False, autoincrement=False),
        sa.Column('organization_id', sa.Integer(), sa.ForeignKey('organizations.id'), nullable=False),
        sa.Column('esp32_name', sa.String(length=64), nullable=False),
        sa.Column('device_id', sa.String(length=64), nullable=False),
        sa.Column('classroom_id', sa.Integer(), sa.ForeignKey('groups.id'), nullable=False),
        sa.Column('switch_id', sa.String(length=64), nullable=True),
        sa.Column('energy_method', sa.String(length=10), nullable=False),
        sa.PrimaryKeyConstraint('asset_id'),
        sa.UniqueConstraint('organization_id', 'esp32_name', 'device_id', name='uq_devices_org_esp32_device'),
    )
    op.create_index('ix_devices_classroom', 'devices', ['classroom_id'])


def downgrade() -> None:
    op.drop_index('ix_devices_classroom', table_name='devices')
    op.drop_table('devices')

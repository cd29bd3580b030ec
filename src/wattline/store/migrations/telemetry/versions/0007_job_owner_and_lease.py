"""jobs: owner, lease and a key for at most one live job per key

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 21:45:00

A job row names the process running it (``owner``) and holds a lease
(``lease_expires_at``) that the worker renews; a starting server fails only jobs
whose lease has expired, never the live jobs of another process. ``job_key``
(e.g. ``backfill:123``) is unique among queued and running jobs, so two processes
cannot start the same backfill. Rows from before this revision have no lease: they
count as expired.
"""

from alembic import op
import sqlalchemy as sa


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None

LIVE = "status IN ('queued', 'running')"


def upgrade() -> None:
    op.add_column('jobs', sa.Column('owner', sa.String(length=200), nullable=True))
    op.add_column('jobs', sa.Column('lease_expires_at', sa.DateTime(timezone=True), nullable=True))
    op.add_column('jobs', sa.Column('job_key', sa.String(length=120), nullable=True))
    op.create_index('uq_jobs_live_key', 'jobs', ['job_key'], unique=True,
                    sqlite_where=sa.text(LIVE), postgresql_where=sa.text(LIVE))


def downgrade() -> None:
    op.drop_index('uq_jobs_live_key', table_name='jobs')
    with op.batch_alter_table('jobs') as batch:
        batch.drop_column('job_key')
        batch.drop_column('lease_expires_at')
        batch.drop_column('owner')

"""registry version: a counter every write of what polling reads moves on

* ``registry_version`` (one row, ``id`` 1): ``version`` grows by one (at least) with
  every INSERT, UPDATE or DELETE on ``assets``, ``systems``, ``points``,
  ``point_transforms`` and ``vendor_accounts``, in the writer's own transaction.
* the triggers ``registry_changed_<table>[_<op>]`` move it: SQLite one per table and
  operation (row level), PostgreSQL one per table (statement level, one function).

The poller keeps its registry (systems, series, transforms) between ticks and reads it
again only when the version moved (``store/registry_version.py``), so no writer has to
remember to tell it. A table rebuilt by a later SQLite batch migration loses its
trigger: the reader then sees fewer triggers than :data:`TABLES` and never caches.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-03 07:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0017'
down_revision = '0016'
branch_labels = None
depends_on = None

TABLES = ("assets", "systems", "points", "point_transforms", "vendor_accounts")
SQLITE_OPS = ("insert", "update", "delete")
BUMP = "UPDATE registry_version SET version = version + 1 WHERE id = 1"


def upgrade() -> None:
    op.create_table(
        'registry_version',
        sa.Column('id', sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column('version', sa.BigInteger(), nullable=False, server_default='0'),
    )
    op.execute("INSERT INTO registry_version (id, version) VALUES (1, 0)")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("CREATE FUNCTION registry_changed() RETURNS trigger LANGUAGE plpgsql AS $$ "
                   f"BEGIN {BUMP}; RETURN NULL; END $$")
        for t in TABLES:
            op.execute(f"CREATE TRIGGER registry_changed_{t} AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE "
                       f"ON {t} FOR EACH STATEMENT EXECUTE FUNCTION registry_changed()")
    else:
        for t in TABLES:
            for o in SQLITE_OPS:
                op.execute(f"CREATE TRIGGER registry_changed_{t}_{o} AFTER {o.upper()} ON {t} "
                           f"BEGIN {BUMP}; END")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for t in TABLES:
            op.execute(f"DROP TRIGGER IF EXISTS registry_changed_{t} ON {t}")
        op.execute("DROP FUNCTION IF EXISTS registry_changed()")
    else:
        for t in TABLES:
            for o in SQLITE_OPS:
                op.execute(f"DROP TRIGGER IF EXISTS registry_changed_{t}_{o}")
    op.drop_table('registry_version')

"""registry version: a counter every write of what polling reads moves on

* ``registry_version`` (one row, ``id`` 1, from a random start): ``version`` grows
  with every transaction that INSERTs, UPDATEs or DELETEs rows of ``assets``,
  ``systems``, ``points``, ``point_transforms`` or ``vendor_accounts``, in that
  transaction.
* the triggers ``registry_changed_<table>[_<op>]`` move it: SQLite one per table and
  operation (row level), PostgreSQL one per table (statement level, one function
  that moves it once a transaction: a transaction-local setting remembers it did).

The poller keeps its registry (systems, series, transforms) between ticks and reads it
again only when the version moved (``store/registry_version.py``), so no writer has to
remember to tell it. A table rebuilt by a later SQLite batch migration loses its
trigger: the reader then sees fewer triggers than :data:`TABLES` and never caches.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-03 07:00:00
"""

import secrets

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
    # a random start: a database made again (same handle, say a demo reset) never
    # repeats the version a reader saw of the one before
    op.execute(f"INSERT INTO registry_version (id, version) VALUES (1, {secrets.randbits(48)})")
    if op.get_bind().dialect.name == "postgresql":
        # once a transaction: every UPDATE of the one row in a transaction adds a row
        # version the next must walk past (measured: 20,000 INSERT statements in one
        # transaction 1.2 s bare, 16.5 s bumping each time, 1.2 s bumping once)
        op.execute("CREATE FUNCTION registry_changed() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                   "IF current_setting('wattline.registry_bumped', true) IS DISTINCT FROM txid_current()::text "
                   f"THEN {BUMP}; "
                   "PERFORM set_config('wattline.registry_bumped', txid_current()::text, true); "
                   "END IF; RETURN NULL; END $$")
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

"""Alembic environment for the main database (run through wattline.store.migrate)."""

from alembic import context

from wattline.store.tables import main_metadata

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=main_metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    version_table="alembic_version_main",
)
with context.begin_transaction():
    context.run_migrations()

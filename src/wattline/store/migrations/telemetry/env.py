"""Alembic environment for the telemetry database (run through wattline.store.migrate)."""

from alembic import context

from wattline.store.tables import telemetry_metadata

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=telemetry_metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    version_table="alembic_version_telemetry",
)
with context.begin_transaction():
    context.run_migrations()

"""Alembic environment: runs on the connection the store hands over, never its own engine."""

from __future__ import annotations

from alembic import context

from mloop.store.schema import Base

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()

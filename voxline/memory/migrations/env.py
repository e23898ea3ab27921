"""Alembic environment. voxline runs it programmatically (see voxline.memory.migrate),
handing over an open connection in `config.attributes["connection"]`."""

from __future__ import annotations

from alembic import context

from voxline.memory.models import Base

config = context.config
target_metadata = Base.metadata


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is None:
        raise RuntimeError("run migrations with voxline.memory.migrate.upgrade(url)")
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    raise RuntimeError("offline migrations are not supported")
run_migrations_online()

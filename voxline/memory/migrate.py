"""Programmatic Alembic: the migrations ship inside the package, no alembic.ini needed.

`upgrade(url)` is what `voxline db upgrade` calls; `open_store` calls `upgrade_async`
(or `check_async` when told not to migrate).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
from collections.abc import AsyncIterator
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.ext.asyncio import AsyncEngine

from voxline.errors import VoxlineError
from voxline.memory.db import create_engine

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
# Serialises concurrent upgrades from several server processes on Postgres.
_ADVISORY_LOCK = 0x766F786C  # "voxl"


class SchemaError(VoxlineError):
    """The database schema is not at the revision this voxline expects."""


def _config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    return cfg


def head_revision() -> str:
    head = ScriptDirectory.from_config(_config()).get_current_head()
    assert head is not None
    return head


@contextlib.asynccontextmanager
async def _file_lock(engine: AsyncEngine) -> AsyncIterator[None]:
    """SQLite has no advisory lock: workers starting together on a new database file
    take turns through a lock file beside it (else both create the tables, one fails)."""
    database = engine.url.database if engine.dialect.name == "sqlite" else None
    if not database or database == ":memory:" or database.startswith("file:"):
        yield
        return
    path = Path(database).with_name(Path(database).name + ".migrate-lock")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        await asyncio.to_thread(fcntl.flock, fd, fcntl.LOCK_EX)  # off the loop: it may wait
        yield
    finally:
        os.close(fd)  # closing releases the lock


async def upgrade_engine(engine: AsyncEngine, revision: str = "head") -> None:
    async with _file_lock(engine):
        await _upgrade(engine, revision)


async def _upgrade(engine: AsyncEngine, revision: str) -> None:
    cfg = _config()
    async with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            await conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _ADVISORY_LOCK})

        def run(sync_conn: sa.Connection) -> None:
            cfg.attributes["connection"] = sync_conn
            command.upgrade(cfg, revision)

        await conn.run_sync(run)


async def current_revision(engine: AsyncEngine) -> str | None:
    async with engine.connect() as conn:
        return await conn.run_sync(lambda c: MigrationContext.configure(c).get_current_revision())


async def check_engine(engine: AsyncEngine) -> None:
    current, head = await current_revision(engine), head_revision()
    if current != head:
        raise SchemaError(
            f"database schema is at {current or 'nothing'}, expected {head}: "
            "run `voxline db upgrade`"
        )


async def upgrade_async(database_url: str | None = None) -> str:
    engine = create_engine(database_url)
    try:
        await upgrade_engine(engine)
        return head_revision()
    finally:
        await engine.dispose()


def upgrade(database_url: str | None = None) -> str:
    """Bring the database at `database_url` (or DATABASE_URL, or ./var/voxline.db) to head."""
    return asyncio.run(upgrade_async(database_url))

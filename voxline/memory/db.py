"""Database URLs and engines: SQLite + sqlite-vec by default, Postgres + pgvector when asked."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from voxline.extras import require
from voxline.memory import sqlite_driver  # noqa: F401  (registers sqlite+aiosqlite_vec)

DEFAULT_SQLITE_PATH = Path("var/voxline.db")


def resolve_url(database_url: str | None = None) -> str:
    """Explicit url > DATABASE_URL > ./var/voxline.db. A bare path means a SQLite file.

    `postgres://` and `postgresql://` are upgraded to the asyncpg driver, since that is
    what hosting providers hand out.
    """
    url = database_url or os.environ.get("DATABASE_URL") or str(DEFAULT_SQLITE_PATH)
    if "://" not in url:
        return f"sqlite+aiosqlite:///{Path(url).expanduser()}"
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix) :]
    if url.startswith("sqlite://") and not url.startswith("sqlite+aiosqlite"):
        return "sqlite+aiosqlite://" + url[len("sqlite://") :]
    return url


def backend_of(url: str) -> str:
    return "postgresql" if make_url(url).get_backend_name() == "postgresql" else "sqlite"


def _load_sqlite_vec(dbapi_conn: Any, _record: Any) -> None:
    # Runs on every new pooled connection: WAL so readers don't block the writer,
    # foreign keys for cascades, and the sqlite-vec functions.
    sqlite_vec = require("sqlite_vec", "postgres")
    path = sqlite_vec.loadable_path()
    dbapi_conn.run_async(lambda c: c.enable_load_extension(True))
    dbapi_conn.run_async(lambda c: c.load_extension(path))
    dbapi_conn.run_async(lambda c: c.enable_load_extension(False))
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA busy_timeout=15000")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


def create_engine(database_url: str | None = None, **kw: Any) -> AsyncEngine:
    url = resolve_url(database_url)
    if backend_of(url) == "sqlite":
        db = make_url(url).database
        if db and db != ":memory:":
            Path(db).parent.mkdir(parents=True, exist_ok=True)
        # Our registered dialect: aiosqlite over a sqlite3 that can load sqlite-vec.
        url = str(make_url(url).set(drivername="sqlite+aiosqlite_vec"))
        engine = create_async_engine(url, **kw)
        sa.event.listen(engine.sync_engine, "connect", _load_sqlite_vec)
        return engine
    require("asyncpg", "postgres")
    # pre_ping: connections that died while Postgres restarted are replaced, not reused.
    kw.setdefault("pool_pre_ping", True)
    kw.setdefault("pool_size", 10)
    kw.setdefault("connect_args", {"timeout": 5, "command_timeout": 30})
    return create_async_engine(url, **kw)

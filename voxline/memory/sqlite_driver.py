"""aiosqlite on a sqlite3 module that can load extensions (sqlite-vec).

Some Python builds (pyenv's default, macOS system Python) compile `sqlite3` without
`enable_load_extension`. Then we run aiosqlite over `pysqlite3` (the
`pysqlite3-binary` wheel) instead, through this SQLAlchemy dialect, so exceptions
still map to SQLAlchemy's IntegrityError/OperationalError.
"""

from __future__ import annotations

import sqlite3
import types
from typing import Any

import aiosqlite
from sqlalchemy.dialects import registry
from sqlalchemy.dialects.sqlite.aiosqlite import (
    AsyncAdapt_aiosqlite_dbapi,
    SQLiteDialect_aiosqlite,
)

from voxline.errors import MissingExtraError

DIALECT = "sqlite.aiosqlite_vec"


def stdlib_can_load_extensions() -> bool:
    return hasattr(sqlite3.Connection, "enable_load_extension")


def _extension_sqlite() -> types.ModuleType:
    if stdlib_can_load_extensions():
        return sqlite3
    try:
        import pysqlite3.dbapi2 as mod  # type: ignore[import-not-found]
    except ImportError as e:
        raise MissingExtraError(
            "this Python's sqlite3 cannot load extensions (needed for sqlite-vec); "
            "install it with: pip install pysqlite3-binary"
        ) from e
    return mod


def _aiosqlite_over(sqlite: types.ModuleType) -> types.ModuleType:
    """A stand-in for the aiosqlite module whose connect() and errors use `sqlite`."""
    mod = types.ModuleType("aiosqlite_vec")
    for name in (
        "DatabaseError",
        "Error",
        "IntegrityError",
        "NotSupportedError",
        "OperationalError",
        "ProgrammingError",
        "sqlite_version",
        "sqlite_version_info",
    ):
        setattr(mod, name, getattr(sqlite, name))
    mod.Connection = aiosqlite.Connection  # type: ignore[attr-defined]
    mod.__version__ = aiosqlite.__version__  # type: ignore[attr-defined]

    def connect(database: str, *, iter_chunk_size: int = 64, **kw: Any) -> aiosqlite.Connection:
        return aiosqlite.Connection(lambda: sqlite.connect(database, **kw), iter_chunk_size)

    mod.connect = connect  # type: ignore[attr-defined]
    return mod


class Dialect(SQLiteDialect_aiosqlite):
    name = "sqlite"
    driver = "aiosqlite_vec"
    supports_statement_cache = True

    @classmethod
    def import_dbapi(cls) -> AsyncAdapt_aiosqlite_dbapi:
        sqlite = _extension_sqlite()
        return AsyncAdapt_aiosqlite_dbapi(_aiosqlite_over(sqlite), sqlite)


registry.register(DIALECT, __name__, "Dialect")

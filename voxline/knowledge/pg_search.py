"""Tenant-filtered top-k on Postgres in one round trip a search.

A search needs planner settings of its own (``access.settings``). Set per transaction,
they cost a BEGIN, a SET and a COMMIT around every query, and each round trip waits for
a server process to be scheduled: on 2 busy cores that, not the index scan, was most of
the search's time. So searches get a pool of their own (``Store.side_engine``) whose
connections run in autocommit and keep their settings between searches; a connection
is sent only the settings that differ from what it already has, and every path sets the
same names, so nothing of an earlier path is left over. Only searches use this pool, so
the settings reach no other statement.

The query is one constant statement sent through the driver (asyncpg prepares it once
per connection): building, compiling and caching a SQLAlchemy statement per search cost
~1.5 ms here. No pre-ping either: a connection that died (Postgres restarted) fails its
query, is dropped, and the search runs once more on a fresh one.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sqlalchemy import exc as sa_exc

from voxline.knowledge import access
from voxline.memory.records import StoreError
from voxline.memory.types import pgvector_text

# relaxed_order may return rows slightly out of order: the k found are sorted exactly.
SEARCH_SQL = (
    "SELECT source, chunk_index, text, dist FROM ("
    "  SELECT source, chunk_index, text, embedding <=> CAST($3 AS vector) AS dist FROM knowledge_chunks"
    "  WHERE tenant_id = $1 AND collection = $2 ORDER BY dist LIMIT $4) s "
    "ORDER BY dist"
)
POOL = {"isolation_level": "AUTOCOMMIT", "pool_pre_ping": False, "pool_size": 4, "max_overflow": 8}
_SETTINGS = "voxline_knowledge_settings"  # key in the pooled connection's info


def _lost(error: BaseException, raw: Any) -> bool:
    """The connection is gone or broken (not a bad query): worth one more try on a new one.
    A backend terminated under a connection shows as a closed socket, a shutdown notice
    (57P01..03) or, when the notice arrives mid-exchange, a protocol state error."""
    import asyncpg

    lost = (OSError, ConnectionError, asyncpg.InterfaceError, asyncpg.PostgresConnectionError,
            asyncpg.exceptions.OperatorInterventionError, asyncpg.exceptions.InternalClientError)
    return isinstance(error, lost) or (raw is not None and raw.is_closed())


async def search(store: Any, key: str, tenant: str, collection: str, query: np.ndarray, *, k: int,
                 path: access.Path | None, **tuning: Any) -> list[Any]:
    """Rows (source, chunk_index, text, dist) of the tenant's k nearest chunks; ``path``
    None: the one its size calls for (``access.choose``)."""
    return await _run(store, key, tenant, collection, path, tuning, SEARCH_SQL,
                      tenant, collection, _text(query), k)


async def explain(store: Any, key: str, tenant: str, collection: str, query: np.ndarray, *, k: int = 5,
                  path: access.Path | None = None, **tuning: Any) -> str:
    """The plan of the statement ``search`` sends, under the settings it is sent with."""
    rows = await _run(store, key, tenant, collection, path, tuning, "EXPLAIN " + SEARCH_SQL,
                      tenant, collection, _text(query), k)
    return "\n".join(r[0] for r in rows)


def _text(query: np.ndarray) -> str:
    return pgvector_text(np.asarray(query, dtype=np.float32).reshape(-1))


async def _run(store: Any, key: str, tenant: str, collection: str, path: access.Path | None,
               tuning: dict[str, Any], sql: str, *args: Any) -> list[Any]:
    engine = store.side_engine("knowledge", **POOL)
    for attempt in (1, 2):
        async with engine.connect() as conn:
            raw = None
            try:
                chosen = path or await access.choose(conn, key, tenant, collection)
                raw = (await conn.get_raw_connection()).driver_connection
                await _configure(conn.info, raw, access.settings(chosen, **tuning))
                return list(await raw.fetch(sql, *args))
            except StoreError:
                raise
            except Exception as e:
                # Through SQLAlchemy (the path probe), the driver's error is the cause of its own.
                lost = getattr(e, "connection_invalidated", False) or any(
                    _lost(x, raw) for x in (e, getattr(getattr(e, "orig", None), "__cause__", None)) if x)
                if lost and attempt == 1:
                    await conn.invalidate()
                    continue
                if lost or isinstance(e, TimeoutError | sa_exc.SQLAlchemyError):
                    raise StoreError(f"database unavailable: {type(e).__name__}", retryable=True) from e
                raise StoreError(f"knowledge search failed: {type(e).__name__}", retryable=False) from e
    raise AssertionError("unreachable")


async def _configure(info: dict[str, Any], raw: Any, wanted: dict[str, str]) -> None:
    """Send the connection the settings it lacks, in one statement (values bound)."""
    have = info.setdefault(_SETTINGS, {})
    change = {name: value for name, value in wanted.items() if have.get(name) != value}
    if not change:
        return
    calls = ", ".join(f"set_config(${2 * i + 1}, ${2 * i + 2}, false)" for i in range(len(change)))
    await raw.fetchrow(f"SELECT {calls}", *[x for pair in change.items() for x in pair])
    have.update(change)

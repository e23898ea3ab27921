"""How a tenant's knowledge is read on Postgres: the access path that fits its size.

- ``exact``: a tenant with at most ``EXACT_MAX_ROWS`` chunks in the collection is read
  through the tenant btree (bitmap scan) and sorted by exact distance. Exact, and on
  this size faster than any graph walk.
- ``tenant_index``: a larger tenant gets a partial HNSW index of its own
  (``CREATE INDEX ... WHERE tenant_id = '...'``), built by ``voxline kb build``. Its
  graph holds only the tenant's rows, so nothing is filtered out after the scan.
- ``global``: a large tenant without a (valid) index of its own -- never built, or
  being rebuilt -- is read through the table-wide HNSW index with pgvector 0.8's
  iterative scan, which keeps fetching candidates until k rows pass the tenant filter.

Tenant ids are untrusted: an index is named after a hash of the tenant id, and its
predicate is quoted by Postgres itself (``format('%I ... %L')``), never by us.

The path is picked per search from a capped row count and the catalog (one round trip),
remembered for ``CACHE_S`` per process. A stale choice costs speed, never correctness:
every path returns the tenant's rows only.
"""

from __future__ import annotations

import hashlib
import time
from typing import Any, Literal

import sqlalchemy as sa

Path = Literal["exact", "tenant_index", "global"]
PATHS: tuple[Path, ...] = ("exact", "tenant_index", "global")

# An exact scan costs ~3 us a row on 2 cores (1M-row table: 5.3 ms at 1,636 rows, 20 ms at
# 3,932 with part of the heap outside shared buffers), a tenant's own graph ~2 ms at any
# size measured: above ~1,500 rows the index is the faster path (docs/orchestration.md).
EXACT_MAX_ROWS = 1500
# ef_search on a tenant's own index: recall@5 0.99 at p95 under 10 ms in the benchmark;
# 200 adds ~0.5 % recall for ~1.5x latency.
TENANT_EF_SEARCH = 100
# Same graph parameters as the table-wide index (migration 0006).
HNSW_WITH = "m = 32, ef_construction = 128"
# A tenant index build outlasts the 30 s command timeout of every other statement (a
# 70,000-row tenant took 86 s here, a 230,000-row one longer): it gets hours.
BUILD_TIMEOUT_S = 6 * 3600.0
# Rewriting more than this share of a tenant's rows drops its index first and builds it
# again afterwards: one build is cheaper than that many graph insertions and deletions.
REBUILD_SHARE = 0.5
CACHE_S = 30.0
_CACHE_MAX = 10_000

_cache: dict[tuple[str, str, str], tuple[float, Path]] = {}


def index_name(tenant: str) -> str:
    """The tenant's partial index: a hash of the tenant id, safe as an identifier."""
    return "ix_kb_tenant_" + hashlib.sha256(tenant.encode()).hexdigest()[:24]


def forget(tenant: str) -> None:
    """Drop this process's remembered paths for the tenant (after its index changed)."""
    for key in [k for k in _cache if k[1] == tenant]:
        _cache.pop(key, None)


_PROBE = sa.text(
    "SELECT (SELECT count(*) FROM (SELECT 1 FROM knowledge_chunks "
    "        WHERE tenant_id = :tenant AND collection = :collection LIMIT :cap) s) AS n, "
    "       EXISTS (SELECT 1 FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
    "               WHERE c.relname = :name AND i.indisvalid) AS indexed"
)


async def choose(conn: Any, key: str, tenant: str, collection: str) -> Path:
    """The path for this tenant's search (``key`` names the database, for the cache)."""
    now = time.monotonic()
    hit = _cache.get((key, tenant, collection))
    if hit and hit[0] > now:
        return hit[1]
    row = (await conn.execute(_PROBE, {"tenant": tenant, "collection": collection,
                                       "cap": EXACT_MAX_ROWS + 1, "name": index_name(tenant)})).one()
    path: Path = "exact" if row.n <= EXACT_MAX_ROWS else "tenant_index" if row.indexed else "global"
    if len(_cache) >= _CACHE_MAX:
        _cache.clear()
    _cache[(key, tenant, collection)] = (now + CACHE_S, path)
    return path


def settings(path: Path, *, ef_search: int | None = None, max_scan_tuples: int = 20000,
             iterative_scan: str = "relaxed_order") -> dict[str, str]:
    """The planner settings that make the planner take ``path``. Every path sets the same
    names (a connection keeps them from one search to the next: nothing of an earlier
    path may be left over); values are ints or checked words."""
    if path == "exact":
        # HNSW has no bitmap scan: with plain index scans off, the tenant's rows come
        # through the btree and are sorted by their exact distance.
        return {"enable_indexscan": "off", "enable_seqscan": "on", "enable_bitmapscan": "on",
                "enable_sort": "on", "plan_cache_mode": "auto"}
    ef = int(ef_search if ef_search is not None else TENANT_EF_SEARCH if path == "tenant_index" else 100)
    return {"hnsw.ef_search": str(ef), "hnsw.iterative_scan": iterative_scan,
            "hnsw.max_scan_tuples": str(int(max_scan_tuples)), "enable_indexscan": "on",
            # Reading a large tenant's rows through the btree and sorting them is what these
            # paths avoid; the planner's row estimates (stale right after a build) must not
            # bring it back. The outer sort of the k rows found still runs.
            "enable_seqscan": "off", "enable_bitmapscan": "off", "enable_sort": "off",
            # tenant_index: planned for this tenant id, so the planner can prove the partial
            # index's predicate. global: a generic plan cannot use any tenant's partial
            # index, so the table-wide one it is.
            "plan_cache_mode": "force_custom_plan" if path == "tenant_index" else "force_generic_plan"}


async def largest_collection(conn: Any, tenant: str) -> int:
    """Rows of the tenant's largest collection: what decides whether it gets an index."""
    return int((await conn.execute(sa.text(
        "SELECT coalesce(max(n), 0) FROM (SELECT count(*) AS n FROM knowledge_chunks "
        "WHERE tenant_id = :tenant GROUP BY collection) s"), {"tenant": tenant})).scalar_one())


async def index_state(conn: Any, tenant: str) -> str | None:
    """``"valid"``, ``"invalid"`` (a build that failed or is running) or None."""
    valid = (await conn.execute(sa.text(
        "SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE c.relname = :name"),
        {"name": index_name(tenant)})).scalar_one_or_none()
    return None if valid is None else "valid" if valid else "invalid"


async def drop_index(engine: Any, tenant: str) -> bool:
    """Drop the tenant's index if there is one (concurrently: other tenants keep writing)."""
    async with engine.connect() as conn:
        conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
        if await index_state(conn, tenant) is None:
            return False
        await _ddl(conn, "DROP INDEX CONCURRENTLY IF EXISTS %I", index_name(tenant))
    forget(tenant)
    return True


async def create_index(engine: Any, tenant: str, rows: int, *, max_work_mem_mb: int = 1024) -> float | None:
    """Build the tenant's partial HNSW index; seconds it took (None if a valid one exists).

    CONCURRENTLY, so other tenants' builds and searches go on meanwhile (searches of this
    tenant take the ``global`` path until it is valid). A failed build leaves an invalid
    index behind; it is dropped and built again."""
    started = time.perf_counter()
    async with engine.connect() as conn:
        conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
        state = await index_state(conn, tenant)
        if state == "valid":
            return None
        name = index_name(tenant)
        if state == "invalid":
            await _ddl(conn, "DROP INDEX CONCURRENTLY IF EXISTS %I", name)
        # The graph is built in memory when it fits (~4 kB a row here); a build that
        # spills is several times slower.
        mem_mb = max(64, min(max_work_mem_mb, rows * 4 // 1024 + 16))
        await conn.exec_driver_sql(f"SET maintenance_work_mem = '{int(mem_mb)}MB'")
        await _ddl(conn, "CREATE INDEX CONCURRENTLY IF NOT EXISTS %I ON knowledge_chunks USING hnsw "
                         f"(embedding vector_cosine_ops) WITH ({HNSW_WITH}) WHERE tenant_id = %L", name, tenant,
                   timeout=BUILD_TIMEOUT_S)
        await conn.exec_driver_sql("RESET maintenance_work_mem")
        await conn.exec_driver_sql("ANALYZE knowledge_chunks")  # row estimates for the new tenant
    forget(tenant)
    return time.perf_counter() - started


async def _ddl(conn: Any, template: str, *args: str, timeout: float | None = None) -> None:
    """Run DDL that names a tenant: Postgres's own ``format`` quotes ``%I``/``%L`` (the
    values are bound), and the result goes to the server as it is (no bind markers read).
    ``timeout``: seconds instead of the driver's command timeout (asyncpg's own, per call)."""
    marks = ", ".join(f"CAST(:a{i} AS text)" for i in range(len(args)))
    ddl = (await conn.execute(sa.text(f"SELECT format(CAST(:template AS text), {marks})"),
                              {"template": template, **{f"a{i}": a for i, a in enumerate(args)}})).scalar_one()
    if timeout is None:
        await conn.exec_driver_sql(ddl)
        return
    raw = await conn.get_raw_connection()
    await raw.driver_connection.execute(ddl, timeout=timeout)

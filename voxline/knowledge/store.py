"""Knowledge chunks in the call store (table ``knowledge_chunks``, migration 0006).

Search is scoped by tenant and collection. On Postgres each tenant is read the way that
fits its size (``voxline.knowledge.access``): exactly through the tenant btree when it
is small, through a partial HNSW index of its own when it is large, or through the
table-wide HNSW index with pgvector 0.8's iterative scan when it has no index of its
own yet. A table-wide HNSW scan filtered afterwards by tenant would return fewer than k
rows (or none) for a tenant that owns a small share of the table. SQLite scans exactly.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import numpy as np
import sqlalchemy as sa

from voxline.knowledge import access, pg_search
from voxline.knowledge.chunks import Chunk
from voxline.memory.models import KnowledgeChunk
from voxline.memory.types import cosine_distance, utcnow

INSERT_BATCH = 500  # rows a statement: well inside the 30 s command timeout at ~5 ms a row


@dataclass(frozen=True)
class Hit:
    source: str
    index: int
    text: str
    score: float  # cosine similarity


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


class KnowledgeStore:
    def __init__(self, store: Any) -> None:
        self.store = store

    async def source_hashes(self, tenant: str, collection: str) -> dict[str, str]:
        async with self.store._tx() as conn:
            rows = await conn.execute(
                sa.select(KnowledgeChunk.source, KnowledgeChunk.source_sha256)
                .where(KnowledgeChunk.tenant_id == tenant, KnowledgeChunk.collection == collection)
                .distinct()
            )
            return {r.source: r.source_sha256 for r in rows}

    async def replace_source(self, tenant: str, collection: str, source: str, digest: str,
                             chunks: list[Chunk], embeddings: np.ndarray) -> None:
        """The chunks of one document, replacing what an earlier build stored for it."""
        now = utcnow()
        async with self.store._tx() as conn:
            await self._delete(conn, tenant, collection, [source])
            rows = [{"tenant_id": tenant, "collection": collection, "source": source, "chunk_index": c.index,
                     "text": c.text, "source_sha256": digest, "embedding": embeddings[i], "created_at": now}
                    for i, c in enumerate(chunks)]
            # In batches: every row is a graph insert into the HNSW index (milliseconds
            # each), and one statement for a large document would outlast the driver's
            # command timeout.
            for start in range(0, len(rows), INSERT_BATCH):
                await conn.execute(sa.insert(KnowledgeChunk), rows[start:start + INSERT_BATCH])

    async def remove_sources(self, tenant: str, collection: str, sources: list[str]) -> None:
        if sources:
            async with self.store._tx() as conn:
                await self._delete(conn, tenant, collection, sources)

    @staticmethod
    async def _delete(conn: Any, tenant: str, collection: str, sources: list[str]) -> None:
        await conn.execute(sa.delete(KnowledgeChunk).where(
            KnowledgeChunk.tenant_id == tenant, KnowledgeChunk.collection == collection,
            KnowledgeChunk.source.in_(sources)))

    async def count(self, tenant: str, collection: str) -> int:
        async with self.store._tx() as conn:
            return int((await conn.execute(sa.select(sa.func.count()).select_from(KnowledgeChunk).where(
                KnowledgeChunk.tenant_id == tenant, KnowledgeChunk.collection == collection))).scalar_one())

    async def rows_of(self, tenant: str, collection: str, sources: list[str]) -> int:
        if not sources:
            return 0
        async with self.store._tx() as conn:
            return int((await conn.execute(sa.select(sa.func.count()).select_from(KnowledgeChunk).where(
                KnowledgeChunk.tenant_id == tenant, KnowledgeChunk.collection == collection,
                KnowledgeChunk.source.in_(sources)))).scalar_one())

    async def before_rewrite(self, tenant: str, rows: int) -> bool:
        """About to delete and insert ``rows`` of the tenant's chunks: drop its index
        first when that is most of them (it is built again afterwards). Whether it was."""
        if self.store.backend != "postgresql":
            return False
        async with self.store._tx() as conn:
            state = await access.index_state(conn, tenant)
            size = await access.largest_collection(conn, tenant)
        if state is None or rows <= access.REBUILD_SHARE * size:
            return False
        return await access.drop_index(self.store.engine, tenant)

    async def settle_access_path(self, tenant: str) -> dict[str, Any]:
        """Give the tenant the access path its size calls for: its own HNSW index above
        ``access.EXACT_MAX_ROWS`` rows in a collection (built if missing), none below."""
        if self.store.backend != "postgresql":
            return {"access_path": "exact"}
        async with self.store._tx() as conn:
            rows = await access.largest_collection(conn, tenant)
        if rows <= access.EXACT_MAX_ROWS:
            dropped = await access.drop_index(self.store.engine, tenant)
            return {"access_path": "exact", "rows": rows, "index_dropped": dropped}
        seconds = await access.create_index(self.store.engine, tenant, rows)
        return {"access_path": "tenant_index", "rows": rows, "index": access.index_name(tenant),
                "index_built": seconds is not None, "index_build_s": round(seconds or 0.0, 3)}

    async def search(self, tenant: str, collection: str, query: np.ndarray, *, k: int = 3,
                     ef_search: int | None = None, max_scan_tuples: int = 20000,
                     iterative_scan: str = "relaxed_order", path: access.Path | None = None) -> list[Hit]:
        """The k nearest chunks of the tenant's collection. ``path`` forces an access path
        (None: the one its size calls for); ``iterative_scan="off"`` with ``path="global"``
        is the table-wide HNSW scan filtered afterwards (for comparison)."""
        if iterative_scan not in ("off", "relaxed_order", "strict_order"):
            raise ValueError(f"iterative_scan: {iterative_scan!r}")
        if path is not None and path not in access.PATHS:
            raise ValueError(f"path: {path!r}")
        if self.store.backend == "postgresql":
            rows = await pg_search.search(self.store, self._key, tenant, collection, query, k=k, path=path,
                                          ef_search=ef_search, max_scan_tuples=max_scan_tuples,
                                          iterative_scan=iterative_scan)
            return [Hit(r["source"], r["chunk_index"], r["text"], 1.0 - float(r["dist"])) for r in rows]
        async with self.store._tx() as conn:
            dist = cosine_distance(KnowledgeChunk.embedding, query, self.store.backend).label("dist")
            rows = await conn.execute(
                sa.select(KnowledgeChunk.source, KnowledgeChunk.chunk_index, KnowledgeChunk.text, dist)
                .where(KnowledgeChunk.tenant_id == tenant, KnowledgeChunk.collection == collection)
                .order_by(dist).limit(k))
            return [Hit(r.source, r.chunk_index, r.text, 1.0 - float(r.dist)) for r in rows]

    @property
    def _key(self) -> str:
        return self.store.engine.url.render_as_string(hide_password=True)

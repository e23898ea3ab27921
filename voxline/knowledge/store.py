"""Knowledge chunks in the call store (table ``knowledge_chunks``, migration 0006).

Search is scoped by tenant and collection. On Postgres it goes through the HNSW index
with pgvector 0.8's iterative index scans (``hnsw.iterative_scan = relaxed_order``): an
HNSW scan filtered afterwards by tenant returns fewer than k rows (or none) when the
tenant owns a small share of the table; the iterative scan goes on fetching candidates
until k rows pass the filter (up to ``hnsw.max_scan_tuples``). SQLite scans exactly.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import numpy as np
import sqlalchemy as sa

from voxline.knowledge.chunks import Chunk
from voxline.memory.models import KnowledgeChunk
from voxline.memory.types import cosine_distance, utcnow


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
            if chunks:
                await conn.execute(sa.insert(KnowledgeChunk), [
                    {"tenant_id": tenant, "collection": collection, "source": source, "chunk_index": c.index,
                     "text": c.text, "source_sha256": digest, "embedding": embeddings[i], "created_at": now}
                    for i, c in enumerate(chunks)])

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

    async def search(self, tenant: str, collection: str, query: np.ndarray, *, k: int = 3,
                     ef_search: int = 100, max_scan_tuples: int = 20000,
                     iterative_scan: str = "relaxed_order") -> list[Hit]:
        """``iterative_scan="off"`` is the plain HNSW scan filtered afterwards (for comparison)."""
        if iterative_scan not in ("off", "relaxed_order", "strict_order"):
            raise ValueError(f"iterative_scan: {iterative_scan!r}")
        async with self.store._tx() as conn:
            if self.store.backend == "postgresql":
                await conn.execute(sa.text(f"SET LOCAL hnsw.ef_search = {int(ef_search)}"))
                await conn.execute(sa.text(f"SET LOCAL hnsw.iterative_scan = {iterative_scan}"))
                await conn.execute(sa.text(f"SET LOCAL hnsw.max_scan_tuples = {int(max_scan_tuples)}"))
                # Planned for this tenant: a small tenant's rows are read through the tenant
                # index and sorted exactly, a large one's through HNSW. A generic plan (taken
                # after five runs of the prepared statement) reads every tenant the first way.
                await conn.execute(sa.text("SET LOCAL plan_cache_mode = force_custom_plan"))
            dist = cosine_distance(KnowledgeChunk.embedding, query, self.store.backend).label("dist")
            inner = (sa.select(KnowledgeChunk.source, KnowledgeChunk.chunk_index, KnowledgeChunk.text, dist)
                     .where(KnowledgeChunk.tenant_id == tenant, KnowledgeChunk.collection == collection)
                     .order_by(dist).limit(k))
            if self.store.backend == "postgresql":
                # relaxed_order may return rows slightly out of order: sort the k found exactly.
                sub = inner.subquery()
                inner = sa.select(sub).order_by(sub.c.dist)
            rows = await conn.execute(inner)
            return [Hit(r.source, r.chunk_index, r.text, 1.0 - float(r.dist)) for r in rows]

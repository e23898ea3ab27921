"""Store methods for long-term memory rows: facts, call summaries, erasure.

Per-caller similarity search reads only that caller's rows (btree on tenant, caller)
and ranks them exactly; the HNSW index serves tenant-wide search (`search_tenant`),
where an approximate index is what makes N = 10^6 fast.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import sqlalchemy as sa

from voxline.memory.models import Call, Caller, CallSummary, Memory, ToolCall, Turn
from voxline.memory.records import CallerKey, MemoryRecord, SummaryRecord, TenantMismatch
from voxline.memory.types import cosine_distance, utcnow

if TYPE_CHECKING:
    from contextlib import AbstractAsyncContextManager

    from sqlalchemy.ext.asyncio import AsyncConnection


_COLS = [
    Memory.id,
    Memory.kind,
    Memory.text,
    Memory.importance,
    Memory.created_at,
    Memory.updated_at,
    Memory.last_used_at,
    Memory.source_call_id,
]


def _mem(r: Any, similarity: float | None = None) -> MemoryRecord:
    return MemoryRecord(
        r.id,
        r.kind,
        r.text,
        r.importance,
        r.created_at,
        r.updated_at,
        r.last_used_at,
        r.source_call_id,
        similarity,
    )


class MemoryRowsMixin:
    backend: str

    if TYPE_CHECKING:

        def _tx(self) -> AbstractAsyncContextManager[AsyncConnection]: ...
        async def _caller_id(
            self, conn: AsyncConnection, tenant: str, key: str | CallerKey, *, create: bool
        ) -> str | None: ...
        async def _audit(
            self,
            conn: AsyncConnection,
            tenant: str,
            actor: str,
            action: str,
            target_type: str,
            target_id: str | None,
            **detail: Any,
        ) -> None: ...
        def _insert(self, table: Any) -> Any: ...

    async def call_owner(self, tenant: str, call_id: str) -> str | None:
        """The caller id of a call, checking it is this tenant's call."""
        async with self._tx() as conn:
            row = (
                await conn.execute(
                    sa.select(Call.tenant_id, Call.caller_id).where(Call.id == call_id)
                )
            ).first()
        if row is None:
            return None
        if row.tenant_id != tenant:
            raise TenantMismatch(f"call {call_id} belongs to another tenant")
        return row.caller_id  # type: ignore[no-any-return]

    async def caller_memories(
        self, tenant: str, caller_id: str, *, query: np.ndarray | None = None, limit: int = 50
    ) -> list[MemoryRecord]:
        cols = _COLS
        scope = (Memory.tenant_id == tenant, Memory.caller_id == caller_id)
        async with self._tx() as conn:
            if query is None:
                rows = await conn.execute(
                    sa.select(*cols)
                    .where(*scope)
                    .order_by(Memory.importance.desc(), Memory.updated_at.desc())
                    .limit(limit)
                )
                return [_mem(r) for r in rows]
            # MATERIALIZED keeps Postgres from answering with the HNSW index and then
            # filtering most of its candidates away: a caller's rows are few, rank them all.
            mine = sa.select(*cols, Memory.embedding).where(*scope).cte("mine")
            mine = mine.prefix_with("MATERIALIZED")
            dist = cosine_distance(mine.c.embedding, query, self.backend).label("dist")
            q = sa.select(*[mine.c[c.key] for c in cols], dist).order_by(dist).limit(limit)
            rows = await conn.execute(q)
            return [_mem(r, 1.0 - float(r.dist)) for r in rows]

    async def search_tenant(
        self, tenant: str, query: np.ndarray, *, k: int = 5, ef_search: int = 120
    ) -> list[MemoryRecord]:
        """Top-k memories of a whole tenant (HNSW on Postgres, exact scan on SQLite)."""
        async with self._tx() as conn:
            if self.backend == "postgresql":
                await conn.execute(sa.text(f"SET LOCAL hnsw.ef_search = {int(ef_search)}"))
            dist = cosine_distance(Memory.embedding, query, self.backend).label("dist")
            rows = await conn.execute(
                sa.select(
                    *_COLS,
                    dist,
                )
                .where(Memory.tenant_id == tenant)
                .order_by(dist)
                .limit(k)
            )
            return [_mem(r, 1.0 - float(r.dist)) for r in rows]

    async def insert_memory(
        self,
        tenant: str,
        caller_id: str,
        *,
        kind: str,
        text: str,
        embedding: np.ndarray,
        importance: float,
        source_call_id: str | None,
    ) -> int:
        now = utcnow()
        async with self._tx() as conn:
            res = await conn.execute(
                sa.insert(Memory)
                .values(
                    tenant_id=tenant,
                    caller_id=caller_id,
                    kind=kind,
                    text=text,
                    embedding=embedding,
                    importance=importance,
                    source_call_id=source_call_id,
                    created_at=now,
                    updated_at=now,
                )
                .returning(Memory.id)
            )
            return int(res.scalar_one())

    async def update_memory(
        self,
        tenant: str,
        memory_id: int,
        *,
        text: str,
        embedding: np.ndarray,
        importance: float,
        source_call_id: str | None,
    ) -> bool:
        async with self._tx() as conn:
            res = await conn.execute(
                sa.update(Memory)
                .where(Memory.id == memory_id, Memory.tenant_id == tenant)
                .values(
                    text=text,
                    embedding=embedding,
                    importance=importance,
                    source_call_id=source_call_id,
                    updated_at=utcnow(),
                )
            )
            return bool(res.rowcount)

    async def touch_memories(self, tenant: str, ids: Sequence[int], actor: str) -> None:
        """Record use (recency) and audit the read, in one short transaction."""
        async with self._tx() as conn:
            if ids:
                await conn.execute(
                    sa.update(Memory)
                    .where(Memory.tenant_id == tenant, Memory.id.in_(ids))
                    .values(last_used_at=utcnow())
                )
            await self._audit(conn, tenant, actor, "memory.recall", "memory", None, ids=list(ids))

    async def save_summary(
        self,
        tenant: str,
        call_id: str,
        caller_id: str | None,
        text: str,
        embedding: np.ndarray | None,
    ) -> None:
        values = dict(text=text, embedding=embedding, created_at=utcnow())
        async with self._tx() as conn:
            await conn.execute(
                self._insert(CallSummary)
                .values(tenant_id=tenant, call_id=call_id, caller_id=caller_id, **values)
                .on_conflict_do_update(index_elements=["call_id"], set_=values)
            )

    async def recent_summaries(
        self, tenant: str, caller_id: str, *, limit: int = 3, query: np.ndarray | None = None
    ) -> list[SummaryRecord]:
        async with self._tx() as conn:
            cols = [CallSummary.call_id, CallSummary.text, CallSummary.created_at]
            if query is None:
                rows = await conn.execute(
                    sa.select(*cols)
                    .where(CallSummary.tenant_id == tenant, CallSummary.caller_id == caller_id)
                    .order_by(CallSummary.created_at.desc())
                    .limit(limit)
                )
                return [SummaryRecord(r.call_id, r.text, r.created_at) for r in rows]
            dist = cosine_distance(CallSummary.embedding, query, self.backend).label("d")
            rows = await conn.execute(
                sa.select(*cols, dist)
                .where(CallSummary.tenant_id == tenant, CallSummary.caller_id == caller_id)
                .order_by(CallSummary.created_at.desc())
                .limit(limit)
            )
            return [
                SummaryRecord(
                    r.call_id, r.text, r.created_at, None if r.d is None else 1.0 - float(r.d)
                )
                for r in rows
            ]

    async def list_memories(
        self, tenant: str, caller_key: str | CallerKey, *, actor: str = "admin"
    ) -> list[MemoryRecord]:
        ck = CallerKey.parse(caller_key)
        async with self._tx() as conn:
            cid = await self._caller_id(conn, tenant, ck, create=False)
            out: list[MemoryRecord] = []
            if cid is not None:
                rows = await conn.execute(
                    sa.select(*_COLS)
                    .where(Memory.tenant_id == tenant, Memory.caller_id == cid)
                    .order_by(Memory.kind, Memory.id)
                )
                out = [_mem(r) for r in rows]
            await self._audit(
                conn, tenant, actor, "memory.list", "caller", ck.fingerprint(), count=len(out)
            )
            return out

    async def forget(
        self, tenant: str, caller_key: str | CallerKey, *, actor: str = "admin"
    ) -> dict[str, int]:
        """Erase a caller: memories, summaries, transcripts and tool calls; calls are kept
        as anonymous metadata (from/to blanked). One transaction, audited."""
        ck = CallerKey.parse(caller_key)
        async with self._tx() as conn:
            cid = await self._caller_id(conn, tenant, ck, create=False)
            counts = {"memories": 0, "summaries": 0, "turns": 0, "tool_calls": 0, "calls": 0}
            if cid is not None:
                calls = sa.select(Call.id).where(Call.tenant_id == tenant, Call.caller_id == cid)
                counts["turns"] = (
                    await conn.execute(sa.delete(Turn).where(Turn.call_id.in_(calls)))
                ).rowcount
                counts["tool_calls"] = (
                    await conn.execute(sa.delete(ToolCall).where(ToolCall.call_id.in_(calls)))
                ).rowcount
                counts["summaries"] = (
                    await conn.execute(
                        sa.delete(CallSummary).where(
                            CallSummary.tenant_id == tenant, CallSummary.call_id.in_(calls)
                        )
                    )
                ).rowcount
                counts["memories"] = (
                    await conn.execute(
                        sa.delete(Memory).where(Memory.tenant_id == tenant, Memory.caller_id == cid)
                    )
                ).rowcount
                counts["calls"] = (
                    await conn.execute(
                        sa.update(Call)
                        .where(Call.tenant_id == tenant, Call.caller_id == cid)
                        .values(from_addr=None, to_addr=None, caller_id=None, erased=True)
                    )
                ).rowcount
                await conn.execute(
                    sa.delete(Caller).where(Caller.tenant_id == tenant, Caller.id == cid)
                )
            await self._audit(
                conn, tenant, actor, "caller.forget", "caller", ck.fingerprint(), **counts
            )
            return counts

    async def last_seen(self, tenant: str, caller_id: str) -> datetime | None:
        async with self._tx() as conn:
            return (
                await conn.execute(
                    sa.select(Caller.last_seen_at).where(
                        Caller.tenant_id == tenant, Caller.id == caller_id
                    )
                )
            ).scalar()

"""What `voxline db ...` and `voxline memory ...` do, as plain synchronous functions.

The CLI mounts these in Typer and prints what they return (JSON-able dicts and lists);
every function takes the database URL (None: DATABASE_URL, else ./var/voxline.db).
Reading and erasing a caller's memory are audited with ``actor``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from voxline.memory.records import CallerKey
from voxline.memory.store import Store, open_store

T = TypeVar("T")


def _with_store(database_url: str | None, work: Callable[[Store], Awaitable[T]]) -> T:
    async def run() -> T:
        # migrate=False: an admin command never changes the schema behind the operator's back.
        store = await open_store(database_url, migrate=False)
        try:
            return await work(store)
        finally:
            await store.close()

    return asyncio.run(run())


def db_upgrade(database_url: str | None = None) -> dict[str, str]:
    """`voxline db upgrade`: bring the schema to head (safe to run twice, or concurrently)."""
    from voxline.memory.migrate import upgrade

    return {"revision": upgrade(database_url)}


def db_sweep(database_url: str | None = None) -> dict[str, list[str]]:
    """`voxline db sweep`: mark calls whose server process is gone as ended abnormally."""
    return {"abandoned": _with_store(database_url, lambda s: s.sweep_abandoned())}


def memory_list(
    database_url: str | None, tenant: str, caller: str, *, actor: str = "cli"
) -> list[dict[str, Any]]:
    """`voxline memory list --caller ID`: the caller's facts, oldest kind first (audited)."""

    async def work(store: Store) -> list[dict[str, Any]]:
        rows = await store.list_memories(tenant, CallerKey.parse(caller), actor=actor)
        return [
            {
                "id": m.id,
                "kind": m.kind,
                "text": m.text,
                "importance": round(m.importance, 3),
                "created_at": m.created_at.isoformat(),
                "updated_at": m.updated_at.isoformat(),
                "last_used_at": m.last_used_at.isoformat() if m.last_used_at else None,
                "source_call_id": m.source_call_id,
            }
            for m in rows
        ]

    return _with_store(database_url, work)


def memory_forget(
    database_url: str | None, tenant: str, caller: str, *, actor: str = "cli"
) -> dict[str, Any]:
    """`voxline memory forget --caller ID`: erase the caller's memories, summaries,
    transcripts and tool calls (calls stay as anonymous metadata); audited."""

    async def work(store: Store) -> dict[str, Any]:
        key = CallerKey.parse(caller)
        counts = await store.forget(tenant, key, actor=actor)
        return {"tenant": tenant, "caller": key.fingerprint(), "erased": counts}

    return _with_store(database_url, work)

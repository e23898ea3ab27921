"""The synchronous helpers behind `voxline db upgrade`, `voxline memory list|forget`."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

from voxline.memory import SchemaError, StoreError, open_store
from voxline.memory.cli_commands import db_sweep, db_upgrade, memory_forget, memory_list
from voxline.memory.migrate import head_revision
from voxline.pipelines.call_memory import CallMemory
from voxline.pipelines.session import CallResult
from voxline.processors.call_log import TurnRecord
from voxline.spec import parse_spec

CALLER = "+15550100999"
AGENT = parse_spec({"name": "front-desk", "prompt": "You answer the phone."})


def remembered_call(database_url: str, tenant: str, text: str) -> str:
    async def run() -> str:
        call_id = f"call-{uuid.uuid4().hex[:12]}"
        memory = await CallMemory.open(
            database_url, agent=AGENT, call_id=call_id, caller_key=CALLER, tenant=tenant
        )
        turn = TurnRecord(1, user_text=text, agent_text="Noted.", ended_at=time.time())
        await memory.on_turn(turn)
        now = time.time()
        await memory.finish(CallResult(call_id, AGENT.name, "caller_hangup", now, now, [turn]))
        return call_id

    return asyncio.run(run())


def test_db_upgrade_is_idempotent(tmp_path: Path) -> None:
    db = str(tmp_path / "fresh.db")
    with pytest.raises(SchemaError, match="voxline db upgrade"):
        memory_list(db, "acme", CALLER)  # admin commands never migrate behind your back
    assert db_upgrade(db) == {"revision": head_revision()}
    assert db_upgrade(db) == {"revision": head_revision()}
    assert memory_list(db, "acme", CALLER) == []


def test_db_upgrade_postgres(postgres_url: str) -> None:
    assert db_upgrade(postgres_url) == {"revision": head_revision()}

    async def index_defs() -> list[str]:
        store = await open_store(postgres_url, migrate=False)
        try:
            async with store.engine.connect() as conn:
                rows = await conn.execute(
                    sa.text("SELECT indexdef FROM pg_indexes WHERE indexname LIKE '%hnsw'")
                )
                return [r[0] for r in rows]
        finally:
            await store.close()

    defs = asyncio.run(index_defs())
    assert len(defs) == 3  # memories, call summaries, knowledge chunks: the benchmarked parameters
    assert all("m='32'" in d and "ef_construction='128'" in d for d in defs), defs


def test_db_upgrade_unreachable_fails_clearly() -> None:
    with pytest.raises((StoreError, OSError)):
        db_upgrade("postgresql+asyncpg://nobody@127.0.0.1:1/none")


def test_list_and_forget(database_url: str, tenant: str, other_tenant: str) -> None:
    call_id = remembered_call(database_url, tenant, "Hi, my name is Anna. I prefer mornings.")
    remembered_call(database_url, other_tenant, "Hi, my name is Bert.")

    listed = memory_list(database_url, tenant, "+1 555 010 0999")  # any spelling of the number
    assert {m["kind"] for m in listed} >= {"name", "preference"}
    assert any("Anna" in m["text"] for m in listed)
    assert all(m["source_call_id"] == call_id for m in listed)

    erased = memory_forget(database_url, tenant, CALLER)
    assert erased["erased"]["memories"] == len(listed)
    assert erased["erased"]["turns"] == 2 and erased["erased"]["summaries"] == 1
    assert CALLER not in str(erased) and "555" not in erased["caller"]
    assert memory_list(database_url, tenant, CALLER) == []
    # The other tenant's caller with the same number is untouched.
    assert "Bert" in memory_list(database_url, other_tenant, CALLER)[0]["text"]

    async def audit() -> list[dict[str, object]]:
        store = await open_store(database_url)
        try:
            return await store.audit_log(tenant)
        finally:
            await store.close()

    actions = [(a["action"], a["actor"]) for a in asyncio.run(audit())]
    assert ("caller.forget", "cli") in actions and ("memory.list", "cli") in actions
    assert call_id not in db_sweep(database_url)["abandoned"]  # it ended properly

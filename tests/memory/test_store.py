from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
from datetime import UTC, datetime
from pathlib import Path

import pytest
from mem_helpers import make_call, new_call_id

from voxline.memory import Store, StoreError, TenantMismatch, open_store
from voxline.memory.migrate import SchemaError

ROOT = Path(__file__).resolve().parents[2]


async def test_call_round_trip(store: Store, tenant: str) -> None:
    cid = await make_call(store, tenant, turns=[("user", "Hello"), ("assistant", "Hi there")])
    await store.add_tool_call(
        cid,
        turn_index=1,
        name="book_table",
        arguments={"people": 2},
        result={"ok": True},
        duration_ms=12.5,
        error=None,
    )
    await store.end_call(
        cid,
        status="completed",
        end_reason="caller-hangup",
        ended_at=datetime.now(UTC),
        cost_usd=0.0123,
    )
    call = await store.get_call(tenant, cid)
    assert call is not None
    assert (call.status, call.end_reason, call.agent) == (
        "completed",
        "caller-hangup",
        "front-desk",
    )
    assert call.model_versions == {"llm": "qwen2.5-0.5b", "prompt": "v3"}
    assert [t.text for t in call.turns] == ["Hello", "Hi there"]
    assert call.tool_calls[0].arguments == {"people": 2} and call.tool_calls[0].result == {
        "ok": True
    }
    assert call.latency_stats["ttfb"]["n"] == 2
    assert call.cost_usd == pytest.approx(0.0123)
    assert call.started_at.tzinfo is not None


async def test_writes_are_idempotent(store: Store, tenant: str) -> None:
    """A retried write (lost acknowledgement) must not duplicate rows."""
    cid = await make_call(store, tenant, turns=[("user", "one")])
    await store.start_call(
        tenant,
        call_id=cid,
        channel="sim",
        direction="inbound",
        from_=None,
        to=None,
        agent="front-desk",
        caller_key=None,
        model_versions={},
    )
    now = datetime.now(UTC)
    for _ in range(2):
        await store.add_turn(
            cid,
            index=0,
            role="user",
            text="one",
            heard=None,
            started_at=now,
            ended_at=now,
            interrupted=False,
            latency_ms={},
        )
        await store.add_tool_call(
            cid,
            turn_index=0,
            name="t",
            arguments={},
            result=None,
            duration_ms=1.0,
            error="boom",
            tool_call_id="tc-1",
        )
    call = await store.get_call(tenant, cid)
    assert call is not None and len(call.turns) == 1 and len(call.tool_calls) == 1


async def test_list_calls_filters(store: Store, tenant: str) -> None:
    a = await make_call(store, tenant, caller="+15551110000")
    b = await make_call(store, tenant, caller="web:user-7")
    await store.end_call(a, status="completed", end_reason="done", ended_at=None)
    assert {c.id for c in await store.list_calls(tenant)} == {a, b}
    assert [c.id for c in await store.list_calls(tenant, caller_key="web:user-7")] == [b]
    assert [c.id for c in await store.list_calls(tenant, status="in-progress")] == [b]
    assert await store.list_calls(tenant, caller_key="web:nobody") == []


async def test_tenant_cannot_read_or_change_another_tenants_calls(
    store: Store, tenant: str, other_tenant: str
) -> None:
    cid = await make_call(store, tenant, turns=[("user", "secret stuff")])
    assert await store.get_call(other_tenant, cid) is None
    assert await store.list_calls(other_tenant) == []
    assert await store.list_calls(other_tenant, caller_key="+15551230001") == []
    with pytest.raises(TenantMismatch):
        await store.start_call(
            other_tenant,
            call_id=cid,
            channel="sim",
            direction="inbound",
            from_=None,
            to=None,
            agent="x",
            caller_key=None,
            model_versions={},
        )
    with pytest.raises(TenantMismatch):
        await store.call_owner(other_tenant, cid)
    counts = await store.forget(other_tenant, "+15551230001")
    assert counts["turns"] == 0
    call = await store.get_call(tenant, cid)
    assert call is not None and call.turns[0].text == "secret stuff"


async def test_turn_for_unknown_call_is_a_permanent_error(store: Store) -> None:
    with pytest.raises(StoreError) as e:
        await store.add_turn(
            "no-such-call",
            index=0,
            role="user",
            text="x",
            heard=None,
            started_at=None,
            ended_at=None,
            interrupted=False,
            latency_ms={},
        )
    assert e.value.retryable is False


async def test_check_only_open_refuses_an_unmigrated_database(tmp_path: Path) -> None:
    with pytest.raises(SchemaError, match="voxline db upgrade"):
        await open_store(str(tmp_path / "empty.db"), migrate=False)


CHILD = textwrap.dedent("""
    import asyncio, os, signal, sys
    from datetime import UTC, datetime
    from voxline.memory import open_store
    async def main(url, tenant, call_id):
        store = await open_store(url)
        await store.start_call(tenant, call_id=call_id, channel="sim", direction="inbound",
                               from_="+15557770000", to="+15550000000", agent="a",
                               caller_key="+15557770000", model_versions={})
        for i in range(3):
            now = datetime.now(UTC)
            await store.add_turn(call_id, index=i, role="user", text=f"turn {i}", heard=None,
                                 started_at=now, ended_at=now, interrupted=False, latency_ms={})
        print("ready", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)  # the server dies mid-call
    asyncio.run(main(*sys.argv[1:]))
""")


async def test_killed_process_keeps_turns_and_call_is_swept(
    store: Store, database_url: str, tenant: str
) -> None:
    call_id = new_call_id()
    proc = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-c", CHILD, database_url, tenant, call_id],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.returncode == -9, proc.stderr[-2000:]
    call = await store.get_call(tenant, call_id)
    assert call is not None and call.status == "in-progress"
    assert [t.text for t in call.turns] == ["turn 0", "turn 1", "turn 2"]
    swept = await store.sweep_abandoned()
    assert call_id in swept
    call = await store.get_call(tenant, call_id)
    assert call is not None
    assert (call.status, call.end_reason) == ("abandoned", "process-gone")
    assert call.ended_at == call.turns[-1].ended_at
    assert call_id not in await store.sweep_abandoned()  # only once


async def test_sweep_spares_live_owners(store: Store, tenant: str) -> None:
    cid = await make_call(store, tenant)
    other = Store(store.engine, owner="elsewhere:1:abc")
    # A call we hold ourselves is never swept; another host's call is asked about.
    assert cid not in await store.sweep_abandoned()

    async def alive(owner: str) -> bool:
        return True

    assert cid not in await other.sweep_abandoned(is_alive=alive)

"""The bounded writer: never blocks the caller, survives a real Postgres outage."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from mem_helpers import new_call_id

from voxline.memory import CallRecorder, RecorderOptions, Store, open_store


def _turn(i: int) -> dict:
    now = datetime.now(UTC)
    return dict(
        index=i,
        role="user" if i % 2 == 0 else "assistant",
        text=f"turn {i}",
        heard=None,
        started_at=now,
        ended_at=now,
        interrupted=False,
        latency_ms={"ttfb": 300.0 + i},
    )


def _start(rec: CallRecorder, tenant: str, call_id: str) -> bool:
    return rec.start_call(
        tenant,
        call_id=call_id,
        channel="sim",
        direction="inbound",
        from_="+15551112222",
        to="+15550000000",
        agent="a",
        caller_key="+15551112222",
        model_versions={},
    )


async def test_writes_in_order_and_flush(store: Store, tenant: str) -> None:
    rec = CallRecorder(store)
    cid = new_call_id()
    assert _start(rec, tenant, cid)
    for i in range(20):
        assert rec.add_turn(cid, **_turn(i))
    assert rec.add_tool_call(
        cid,
        turn_index=3,
        name="lookup",
        arguments={"q": 1},
        result=[1],
        duration_ms=2.0,
        error=None,
    )
    assert rec.end_call(cid, status="completed", end_reason="hangup")
    assert await rec.flush(10)
    await rec.close()
    call = await store.get_call(tenant, cid)
    assert call is not None and call.status == "completed"
    assert len(call.turns) == 20 and len(call.tool_calls) == 1
    assert rec.stats.written == 23 and rec.stats.failed == 0


async def test_full_queue_refuses_instead_of_blocking(store: Store, tenant: str) -> None:
    rec = CallRecorder(store, RecorderOptions(max_pending=5))
    cid = new_call_id()
    accepted = [_start(rec, tenant, cid)] + [rec.add_turn(cid, **_turn(i)) for i in range(10)]
    assert accepted.count(True) == 5 and rec.stats.refused == 6
    await rec.close()
    call = await store.get_call(tenant, cid)
    assert call is not None and len(call.turns) == 4  # exactly what was acknowledged


async def test_permanent_error_is_dropped_and_counted(store: Store) -> None:
    rec = CallRecorder(store)
    assert rec.add_turn("no-such-call", **_turn(0))
    assert await rec.flush(10)
    await rec.close()
    assert rec.stats.failed == 1


async def test_postgres_outage_buffers_then_flushes(private_postgres, tenant: str) -> None:
    """Stop the real server mid-call; the call goes on; restart; nothing acknowledged is lost."""
    store = await open_store(private_postgres.url)
    rec = CallRecorder(store, RecorderOptions(backoff_initial_s=0.02, backoff_max_s=0.2))
    cid = new_call_id()
    try:
        assert _start(rec, tenant, cid)
        for i in range(5):
            assert rec.add_turn(cid, **_turn(i))
        assert await rec.flush(10)

        await asyncio.to_thread(private_postgres.stop, "immediate")
        t0 = asyncio.get_running_loop().time()
        for i in range(5, 40):
            assert rec.add_turn(cid, **_turn(i))  # returns at once while the DB is down
        assert rec.end_call(cid, status="completed", end_reason="hangup")
        assert asyncio.get_running_loop().time() - t0 < 0.05
        await asyncio.sleep(0.5)
        assert rec.pending > 0 and rec.stats.retries > 0

        await asyncio.to_thread(private_postgres.start)
        assert await rec.flush(30)
        call = await store.get_call(tenant, cid)
        assert call is not None and call.status == "completed"
        assert [t.index for t in call.turns] == list(range(40))
    finally:
        await rec.close()
        await store.close()

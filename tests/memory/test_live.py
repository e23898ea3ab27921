"""Live state: in-process and real Redis (two clients standing in for two processes)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest

from voxline.memory import InProcessLiveState, LiveState, RedisLiveState


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture(params=["inprocess", "redis"])
async def pair(request: pytest.FixtureRequest) -> AsyncIterator[tuple[LiveState, LiveState]]:
    """Two handles on the same live state, as two server processes would hold."""
    if request.param == "inprocess":
        s = InProcessLiveState()
        yield s, s
        return
    url = request.getfixturevalue("redis_url")
    prefix = f"vx-{uuid.uuid4().hex[:8]}:"
    a, b = RedisLiveState(url, prefix=prefix), RedisLiveState(url, prefix=prefix)
    yield a, b
    await a.close()
    await b.close()


async def test_one_owner_per_call(pair: tuple[LiveState, LiveState]) -> None:
    a, b = pair
    assert await a.claim_call("c1", "proc-a", 30)
    assert not await b.claim_call("c1", "proc-b", 30)
    assert await a.claim_call("c1", "proc-a", 30)  # re-claim by the holder is fine
    assert await b.owner_of("c1") == "proc-a"
    await b.release_call("c1", "proc-b")  # not the owner: no effect
    assert await a.owner_of("c1") == "proc-a"
    await a.release_call("c1", "proc-a")
    assert await b.claim_call("c1", "proc-b", 30)


async def test_concurrent_call_cap_is_atomic(pair: tuple[LiveState, LiveState]) -> None:
    a, b = pair
    results = await asyncio.gather(
        *[(a if i % 2 else b).acquire_slot("acme", f"call-{i}", 3, 30) for i in range(10)]
    )
    assert sum(results) == 3
    assert await a.active_calls("acme") == 3
    assert await b.active_calls("other-tenant") == 0
    winner = next(f"call-{i}" for i, ok in enumerate(results) if ok)
    await b.release_slot("acme", winner)
    assert await a.acquire_slot("acme", "call-new", 3, 30)
    assert not await b.acquire_slot("acme", "call-newer", 3, 30)


async def test_rate_limit(pair: tuple[LiveState, LiveState]) -> None:
    a, b = pair
    hits = [await (a if i % 2 else b).hit_rate("acme", "outbound", 5, 60) for i in range(8)]
    assert hits == [True] * 5 + [False] * 3
    assert await a.hit_rate("globex", "outbound", 5, 60)


async def test_rate_limit_slides_over_a_windows_edge() -> None:
    """Five hits just before a minute's edge leave none for just after it: a fixed
    window would let ten through in a second."""
    now = [59.5]
    live = InProcessLiveState(clock=lambda: now[0])
    assert [await live.hit_rate("acme", "ip", 5, 60) for _ in range(5)] == [True] * 5
    now[0] = 60.5
    assert not await live.hit_rate("acme", "ip", 5, 60)
    now[0] = 119.6  # a minute after the first hits
    assert [await live.hit_rate("acme", "ip", 5, 60) for _ in range(6)] == [True] * 5 + [False]


async def test_idle_rate_keys_are_dropped_each_by_its_own_window(monkeypatch) -> None:
    from voxline.memory import live as live_module

    monkeypatch.setattr(live_module, "RATE_KEYS_SWEPT_AT", 3)
    now = [0.0]
    live = InProcessLiveState(clock=lambda: now[0])
    assert await live.hit_rate("acme", "per-hour", 1, 3600)
    assert await live.hit_rate("acme", "ip-1", 5, 60)
    assert await live.hit_rate("acme", "ip-2", 5, 60)
    now[0] = 120.0
    assert await live.hit_rate("acme", "ip-3", 5, 60)  # the sweep: ip-1 and ip-2 are idle
    assert set(live._rates) == {("acme", "per-hour"), ("acme", "ip-3")}
    assert not await live.hit_rate("acme", "per-hour", 1, 3600)  # its hour is not over


async def test_redis_crashed_process_lapses(redis_url: str) -> None:
    """A process that stops heart-beating loses its calls, liveness and slots."""
    prefix = f"vx-{uuid.uuid4().hex[:8]}:"
    a, b = RedisLiveState(redis_url, prefix=prefix), RedisLiveState(redis_url, prefix=prefix)
    try:
        await a.heartbeat("proc-a", [], 0.3)
        assert await a.claim_call("c9", "proc-a", 0.3)
        assert await a.acquire_slot("acme", "c9", 1, 0.3)
        await a.heartbeat("proc-a", ["c9"], 0.3)
        assert await b.process_alive("proc-a")
        assert not await b.acquire_slot("acme", "c-b", 1, 30)
        await asyncio.sleep(0.45)  # proc-a "died": no more heartbeats
        assert not await b.process_alive("proc-a")
        assert await b.owner_of("c9") is None
        assert await b.acquire_slot("acme", "c-b", 1, 30)
    finally:
        await a.close()
        await b.close()


async def test_inprocess_expiry_with_clock() -> None:
    clock = Clock()
    s = InProcessLiveState(clock)
    await s.heartbeat("p", [], 10)
    assert await s.claim_call("c", "p", 10) and await s.acquire_slot("t", "c", 1, 10)
    clock.t += 8
    await s.heartbeat("p", ["c"], 10)
    clock.t += 8
    assert await s.process_alive("p") and await s.owner_of("c") == "p"
    assert not await s.acquire_slot("t", "x", 1, 10)
    clock.t += 11
    assert not await s.process_alive("p") and await s.owner_of("c") is None
    assert await s.acquire_slot("t", "x", 1, 10)


async def test_sweep_uses_live_state(store, tenant: str) -> None:  # type: ignore[no-untyped-def]
    from mem_helpers import make_call

    from voxline.memory import Store

    live = InProcessLiveState()
    other = Store(store.engine, owner="host-b:42:zz")
    cid = await make_call(other, tenant)
    await live.heartbeat("host-b:42:zz", [cid], 30)
    assert cid not in await store.sweep_abandoned(is_alive=live.process_alive)
    live2 = InProcessLiveState()  # host-b stopped heart-beating
    assert cid in await store.sweep_abandoned(is_alive=live2.process_alive)

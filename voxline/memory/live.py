"""Live state shared by server processes: who holds which call, concurrency caps, rates.

Redis (REDIS_URL) when several processes serve one deployment, in-process otherwise.
Everything expires: a process that dies stops heart-beating, and its calls, its
liveness key and its slots in the per-tenant caps lapse after `ttl_s`, so a crash
never leaks capacity. Redis updates are Lua scripts, atomic across processes, and use
the server's clock, so hosts with skewed clocks agree.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
import os
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Protocol

from voxline.extras import require

log = logging.getLogger("voxline.live")


class LiveState(Protocol):
    async def heartbeat(self, owner: str, call_ids: list[str], ttl_s: float) -> None: ...
    async def process_alive(self, owner: str) -> bool: ...
    async def claim_call(self, call_id: str, owner: str, ttl_s: float) -> bool: ...
    async def owner_of(self, call_id: str) -> str | None: ...
    async def release_call(self, call_id: str, owner: str) -> None: ...
    async def acquire_slot(self, tenant: str, call_id: str, cap: int, ttl_s: float) -> bool: ...
    async def release_slot(self, tenant: str, call_id: str) -> None: ...
    async def active_calls(self, tenant: str) -> int: ...
    async def hit_rate(self, tenant: str, key: str, limit: int, window_s: float) -> bool: ...
    async def send(self, owner: str, message: dict[str, str]) -> None:
        """Deliver a message to the process ``owner`` (e.g. a verdict for a call it holds)."""
    def inbox(self, owner: str) -> AsyncIterator[dict[str, str]]:
        """Messages sent to ``owner``, as they arrive."""
    async def put_value(self, key: str, value: str, ttl_s: float) -> None:
        """Keep ``value`` under ``key`` for ``ttl_s`` (e.g. what a placed call is for)."""
    async def take_value(self, key: str) -> str | None:
        """The value under ``key``, removed: of several processes asking, one gets it."""
    async def close(self) -> None: ...


RATE_KEYS_SWEPT_AT = 1024  # rate keys kept before the idle ones are dropped


class InProcessLiveState:
    """Single-process implementation with the same expiry semantics (injectable clock)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._now = clock
        self._procs: dict[str, float] = {}
        self._calls: dict[str, tuple[str, float]] = {}
        self._slots: dict[str, dict[str, float]] = {}
        self._rates: dict[tuple[str, str], tuple[float, collections.deque[float]]] = {}  # → window, hits
        self._inboxes: dict[str, asyncio.Queue[dict[str, str]]] = {}
        self._values: dict[str, tuple[str, float]] = {}

    async def heartbeat(self, owner: str, call_ids: list[str], ttl_s: float) -> None:
        exp = self._now() + ttl_s
        self._procs[owner] = exp
        for cid in call_ids:
            if self._calls.get(cid, ("",))[0] == owner:
                self._calls[cid] = (owner, exp)
            for slots in self._slots.values():
                if cid in slots:
                    slots[cid] = exp

    async def process_alive(self, owner: str) -> bool:
        return self._procs.get(owner, 0) > self._now()

    async def claim_call(self, call_id: str, owner: str, ttl_s: float) -> bool:
        cur = self._calls.get(call_id)
        if cur and cur[1] > self._now() and cur[0] != owner:
            return False
        self._calls[call_id] = (owner, self._now() + ttl_s)
        return True

    async def owner_of(self, call_id: str) -> str | None:
        cur = self._calls.get(call_id)
        return cur[0] if cur and cur[1] > self._now() else None

    async def release_call(self, call_id: str, owner: str) -> None:
        if self._calls.get(call_id, ("",))[0] == owner:
            del self._calls[call_id]

    def _live_slots(self, tenant: str) -> dict[str, float]:
        now = self._now()
        slots = {c: e for c, e in self._slots.get(tenant, {}).items() if e > now}
        self._slots[tenant] = slots
        return slots

    async def acquire_slot(self, tenant: str, call_id: str, cap: int, ttl_s: float) -> bool:
        slots = self._live_slots(tenant)
        if call_id not in slots and len(slots) >= cap:
            return False
        slots[call_id] = self._now() + ttl_s
        return True

    async def release_slot(self, tenant: str, call_id: str) -> None:
        self._slots.get(tenant, {}).pop(call_id, None)

    async def active_calls(self, tenant: str) -> int:
        return len(self._live_slots(tenant))

    async def hit_rate(self, tenant: str, key: str, limit: int, window_s: float) -> bool:
        """At most ``limit`` accepted hits in any ``window_s`` (a sliding window)."""
        now = self._now()
        if len(self._rates) >= RATE_KEYS_SWEPT_AT:  # keys nobody hit for their window: bounded memory
            self._rates = {k: (w, h) for k, (w, h) in self._rates.items() if h and h[-1] > now - w}
        _, hits = self._rates.setdefault((tenant, key), (window_s, collections.deque()))
        self._rates[(tenant, key)] = (window_s, hits)
        while hits and hits[0] <= now - window_s:
            hits.popleft()
        if len(hits) >= limit:
            return False
        hits.append(now)
        return True

    async def send(self, owner: str, message: dict[str, str]) -> None:
        self._inboxes.setdefault(owner, asyncio.Queue(maxsize=1000)).put_nowait(message)

    async def inbox(self, owner: str) -> AsyncIterator[dict[str, str]]:
        queue = self._inboxes.setdefault(owner, asyncio.Queue(maxsize=1000))
        while True:
            yield await queue.get()

    async def put_value(self, key: str, value: str, ttl_s: float) -> None:
        now = self._now()
        self._values = {k: v for k, v in self._values.items() if v[1] > now}
        self._values[key] = (value, now + ttl_s)

    async def take_value(self, key: str) -> str | None:
        cur = self._values.pop(key, None)
        return cur[0] if cur and cur[1] > self._now() else None

    async def close(self) -> None:
        return None


# KEYS[1]=slots zset; ARGV: call_id, cap, ttl_ms. Members scored by expiry (server ms).
_ACQUIRE = """
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if not redis.call('ZSCORE', KEYS[1], ARGV[1])
   and redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then
  return 0
end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[3]) * 2)
return 1
"""
_COUNT = """
local t = redis.call('TIME')
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', t[1] * 1000 + math.floor(t[2] / 1000))
return redis.call('ZCARD', KEYS[1])
"""
# KEYS[1]=the key's accepted hits (a sorted set by time); ARGV: window_ms, limit, hit id.
# A sliding window: a fixed one lets twice the limit through across a window's edge.
_RATE = """
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local window = tonumber(ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[1], now, ARGV[3])
redis.call('PEXPIRE', KEYS[1], window)
return 1
"""
# Refresh the TTL of the slot members and call keys this owner still holds.
_HEARTBEAT = """
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local ttl = tonumber(ARGV[2])
redis.call('SET', KEYS[1], '1', 'PX', ttl)
for i = 3, #ARGV do
  local ck = ARGV[1] .. 'call:' .. ARGV[i]
  if redis.call('GET', ck) == KEYS[2] then redis.call('PEXPIRE', ck, ttl) end
  local sk = ARGV[1] .. 'callslots:' .. ARGV[i]
  for _, zs in ipairs(redis.call('SMEMBERS', sk)) do
    redis.call('ZADD', zs, 'XX', now + ttl, ARGV[i])
  end
  redis.call('PEXPIRE', sk, ttl)
end
return 1
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class RedisLiveState:
    def __init__(self, url: str | None = None, *, prefix: str = "voxline:") -> None:
        aioredis = require("redis.asyncio", "redis")
        self.url = url or os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"
        self.p = prefix
        self.r = aioredis.from_url(self.url, decode_responses=True)
        self._acquire = self.r.register_script(_ACQUIRE)
        self._count = self.r.register_script(_COUNT)
        self._rate = self.r.register_script(_RATE)
        self._hb = self.r.register_script(_HEARTBEAT)
        self._release = self.r.register_script(_RELEASE)

    def _ms(self, s: float) -> int:
        return max(1, int(s * 1000))

    async def heartbeat(self, owner: str, call_ids: list[str], ttl_s: float) -> None:
        await self._hb(
            keys=[f"{self.p}proc:{owner}", owner], args=[self.p, self._ms(ttl_s), *call_ids]
        )

    async def process_alive(self, owner: str) -> bool:
        return bool(await self.r.exists(f"{self.p}proc:{owner}"))

    async def claim_call(self, call_id: str, owner: str, ttl_s: float) -> bool:
        key = f"{self.p}call:{call_id}"
        if await self.r.set(key, owner, nx=True, px=self._ms(ttl_s)):
            return True
        return await self.r.get(key) == owner

    async def owner_of(self, call_id: str) -> str | None:
        return await self.r.get(f"{self.p}call:{call_id}")  # type: ignore[no-any-return]

    async def release_call(self, call_id: str, owner: str) -> None:
        await self._release(keys=[f"{self.p}call:{call_id}"], args=[owner])

    async def acquire_slot(self, tenant: str, call_id: str, cap: int, ttl_s: float) -> bool:
        zs = f"{self.p}slots:{tenant}"
        ok = bool(await self._acquire(keys=[zs], args=[call_id, cap, self._ms(ttl_s)]))
        if ok:  # lets the heartbeat find every cap this call counts in
            key = f"{self.p}callslots:{call_id}"
            await self.r.sadd(key, zs)
            await self.r.pexpire(key, self._ms(ttl_s))
        return ok

    async def release_slot(self, tenant: str, call_id: str) -> None:
        zs = f"{self.p}slots:{tenant}"
        await self.r.zrem(zs, call_id)
        await self.r.srem(f"{self.p}callslots:{call_id}", zs)

    async def send(self, owner: str, message: dict[str, str]) -> None:
        await self.r.publish(f"{self.p}inbox:{owner}", json.dumps(message))

    async def inbox(self, owner: str) -> AsyncIterator[dict[str, str]]:
        pubsub = self.r.pubsub()
        await pubsub.subscribe(f"{self.p}inbox:{owner}")
        try:
            async for item in pubsub.listen():
                if item.get("type") == "message":
                    with contextlib.suppress(ValueError, TypeError):
                        message = json.loads(item["data"])
                        if isinstance(message, dict):
                            yield message
        finally:
            await pubsub.aclose()

    async def put_value(self, key: str, value: str, ttl_s: float) -> None:
        await self.r.set(f"{self.p}value:{key}", value, px=self._ms(ttl_s))

    async def take_value(self, key: str) -> str | None:
        return await self.r.getdel(f"{self.p}value:{key}")  # type: ignore[no-any-return]

    async def active_calls(self, tenant: str) -> int:
        return int(await self._count(keys=[f"{self.p}slots:{tenant}"]))

    async def hit_rate(self, tenant: str, key: str, limit: int, window_s: float) -> bool:
        ok = await self._rate(keys=[f"{self.p}rate:{tenant}:{key}"],
                              args=[self._ms(window_s), limit, uuid.uuid4().hex])
        return bool(int(ok))

    async def close(self) -> None:
        await self.r.aclose()


async def read_inbox(live: LiveState, owner: str,
                     handle: Callable[[dict[str, str]], Awaitable[None]]) -> None:
    """Hand each message sent to ``owner`` to ``handle``, for as long as the process runs;
    a lost connection is reopened (messages sent meanwhile are lost: pub/sub keeps none)."""
    while True:
        try:
            async for message in live.inbox(owner):
                await handle(message)
        except asyncio.CancelledError:
            raise
        except Exception as e:
            log.warning("- inbox: %s; reconnecting", type(e).__name__)
            await asyncio.sleep(1.0)


def live_state_from_env(url: str | None = None) -> LiveState:
    """Redis when REDIS_URL (or `url`) is set, in-process otherwise."""
    url = url or os.environ.get("REDIS_URL")
    return RedisLiveState(url) if url else InProcessLiveState()

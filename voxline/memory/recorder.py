"""CallRecorder: the audio path hands writes over without waiting; one task writes them.

- `record_*` never awaits the database: it appends to a bounded queue and returns
  True ("acknowledged") or False when the queue is full (counted, logged, never silent).
- One writer task drains the queue in order, so a turn is never written before its call.
- A retryable failure (database down) is retried with capped exponential backoff while
  the queue keeps buffering; when the database returns the backlog is flushed in order.
  Store writes are idempotent, so a retry after a lost acknowledgement duplicates nothing.
- A permanent failure (e.g. constraint violation) drops that one write and counts it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from voxline.errors import VoxlineError
from voxline.memory.store import Store

log = logging.getLogger("voxline.memory")


@dataclass(frozen=True)
class RecorderOptions:
    max_pending: int = 10_000  # acknowledged writes held in memory while the DB is away
    backoff_initial_s: float = 0.05
    backoff_max_s: float = 2.0
    close_timeout_s: float = 10.0


@dataclass
class RecorderStats:
    written: int = 0
    refused: int = 0  # queue full: not acknowledged
    failed: int = 0  # permanent error: acknowledged but not written
    retries: int = 0


@dataclass
class _Op:
    call_id: str
    name: str
    run: Callable[[], Awaitable[None]]


class CallRecorder:
    def __init__(self, store: Store, options: RecorderOptions | None = None) -> None:
        self.store = store
        self.options = options or RecorderOptions()
        self.stats = RecorderStats()
        self._queue: deque[_Op] = deque()
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None
        self._closing = False

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="call-recorder")

    @property
    def pending(self) -> int:
        return len(self._queue)

    def _submit(self, call_id: str, name: str, run: Callable[[], Awaitable[None]]) -> bool:
        if self._closing or len(self._queue) >= self.options.max_pending:
            self.stats.refused += 1
            log.error("%s %s refused: recorder queue full (%d)", call_id, name, len(self._queue))
            return False
        self.start()
        self._queue.append(_Op(call_id, name, run))
        self._idle.clear()
        self._wake.set()
        return True

    # -- the calls the session makes (same arguments as Store) ----------------------
    def start_call(self, tenant: str, **kw: Any) -> bool:
        return self._submit(
            kw["call_id"], "start_call", lambda: self.store.start_call(tenant, **kw)
        )

    def add_turn(self, call_id: str, **kw: Any) -> bool:
        return self._submit(call_id, "add_turn", lambda: self.store.add_turn(call_id, **kw))

    def add_tool_call(self, call_id: str, **kw: Any) -> bool:
        kw.setdefault("tool_call_id", str(uuid.uuid4()))  # fixed now: retries stay idempotent
        return self._submit(
            call_id, "add_tool_call", lambda: self.store.add_tool_call(call_id, **kw)
        )

    def end_call(self, call_id: str, *, ended_at: datetime | None = None, **kw: Any) -> bool:
        return self._submit(
            call_id, "end_call", lambda: self.store.end_call(call_id, ended_at=ended_at, **kw)
        )

    # -- the writer ---------------------------------------------------------------------
    async def _run(self) -> None:
        while True:
            if not self._queue:
                self._idle.set()
                self._wake.clear()
                await self._wake.wait()
                continue
            op = self._queue[0]
            await self._write(op)
            self._queue.popleft()

    async def _write(self, op: _Op) -> None:
        delay = self.options.backoff_initial_s
        while True:
            try:
                await op.run()
                self.stats.written += 1
                return
            except VoxlineError as e:
                if not e.retryable:
                    self.stats.failed += 1
                    log.error("%s %s dropped: %s", op.call_id, op.name, e)
                    return
                self.stats.retries += 1
                if self.stats.retries % 20 == 1:
                    log.warning(
                        "%s %s waiting for database (%d pending): %s",
                        op.call_id,
                        op.name,
                        len(self._queue),
                        e,
                    )
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.options.backoff_max_s)

    async def flush(self, timeout: float | None = None) -> bool:  # noqa: ASYNC109
        """Wait until every acknowledged write is in the database. False on timeout."""
        if self._task is None:
            return not self._queue
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
            return True
        except TimeoutError:
            return False

    async def close(self) -> None:
        """Flush (bounded by close_timeout_s), then stop the writer; reports what is unwritten."""
        self._closing = True
        flushed = await self.flush(self.options.close_timeout_s)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if not flushed:
            log.error("recorder closed with %d unwritten writes", len(self._queue))

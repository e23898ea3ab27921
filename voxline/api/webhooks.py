"""Outgoing webhooks: ``call.started``, ``call.ended`` (with the summary), ``handoff.requested``.

Each delivery is a JSON POST signed with the webhook's own secret::

    Voxline-Signature: t=1765432100,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>
    Voxline-Event: call.ended
    Voxline-Delivery: <id, the same on every retry>

Receivers check it with :func:`verify_signature` (and reject old timestamps). A failed
delivery (a connection error, a timeout, 5xx, 408, 429) is retried with exponential
backoff and jitter, a bounded number of times; other 4xx answers are final. Events wait
in a bounded in-process queue off the call path; every delivery's outcome is stored.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import random
import time
import uuid
from dataclasses import dataclass
from typing import Any

from voxline.api.store import PlatformStore
from voxline.observability.host_events import BaseListener, CallInfo

log = logging.getLogger("voxline.webhooks")


@dataclass(frozen=True)
class WebhookOptions:
    max_attempts: int = 6
    base_delay_secs: float = 1.0
    max_delay_secs: float = 60.0
    timeout_secs: float = 10.0
    queue_size: int = 10000
    summary_wait_secs: float = 30.0  # call.ended waits this long for the call's summary


def sign(secret: str, body: bytes, timestamp: int | None = None) -> str:
    t = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def verify_signature(secret: str, header: str, body: bytes, *, tolerance_secs: float = 300) -> bool:
    """For receivers: the signature is ours and no older than ``tolerance_secs``."""
    parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    try:
        t = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs(time.time() - t) > tolerance_secs:
        return False
    expected = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, parts.get("v1", ""))


def _retryable(status: int) -> bool:
    return status >= 500 or status in (408, 429)


class WebhookDispatcher(BaseListener):
    """Queues call events and delivers them to the tenant's webhooks."""

    def __init__(self, store: PlatformStore, options: WebhookOptions | None = None, *, client: Any = None) -> None:
        import httpx

        self.store = store
        self.options = options or WebhookOptions()
        self._client = client or httpx.AsyncClient(timeout=self.options.timeout_secs, follow_redirects=False)
        self._queue: asyncio.Queue[tuple[str, str, dict[str, Any]]] = asyncio.Queue(self.options.queue_size)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._worker: asyncio.Task[Any] | None = None
        self.dropped = 0

    def start(self) -> None:
        self._worker = asyncio.create_task(self._run())

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def publish(self, tenant: str, event: str, data: dict[str, Any]) -> None:
        try:
            self._queue.put_nowait((tenant, event, data))
        except asyncio.QueueFull:
            self.dropped += 1
            log.error("- webhook queue full: %s for tenant %s dropped", event, tenant)

    # -- call events -------------------------------------------------------------------
    @staticmethod
    def _call(call: CallInfo) -> dict[str, Any]:
        return {"call_id": call.call_id, "agent": call.agent, "channel": call.channel,
                "direction": call.direction, "from": call.caller if call.direction == "inbound" else call.dialed,
                "to": call.dialed if call.direction == "inbound" else call.caller}

    def call_started(self, call: CallInfo) -> None:
        self.publish(call.tenant, "call.started", self._call(call))

    def handoff_requested(self, call: CallInfo, target: str) -> None:
        self.publish(call.tenant, "handoff.requested", {**self._call(call), "target": target})

    def call_ended(self, call: CallInfo, reason: str, result: Any) -> None:
        duration = round(time.time() - call.started, 1)
        turns = len(getattr(result, "turns", []) or [])
        self._spawn(self._ended(call, {**self._call(call), "outcome": reason, "duration_secs": duration,
                                       "turns": turns}))

    async def _ended(self, call: CallInfo, data: dict[str, Any]) -> None:
        """call.ended carries the summary, written after the call: wait for it (bounded)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.options.summary_wait_secs
        summary = None
        remembers = call.spec.memory.enabled and call.spec.memory.remember
        while remembers:
            with contextlib.suppress(Exception):
                summary = await self.store.call_summary(call.tenant, call.call_id)
            if summary is not None or loop.time() >= deadline:
                break
            await asyncio.sleep(0.25)
        self.publish(call.tenant, "call.ended", {**data, "summary": summary})

    # -- delivery ------------------------------------------------------------------------
    async def _run(self) -> None:
        while True:
            tenant, event, data = await self._queue.get()
            try:
                hooks = await self.store.webhooks_for(tenant, event)
            except Exception as e:
                log.warning("- webhooks of tenant %s unavailable: %s", tenant, type(e).__name__)
                hooks = []
            for hook_id, url, secret in hooks:
                self._spawn(self._deliver(tenant, hook_id, url, secret, event, data))
            self._queue.task_done()

    async def _deliver(self, tenant: str, hook_id: str, url: str, secret: str, event: str,
                       data: dict[str, Any]) -> None:
        delivery = str(uuid.uuid4())
        body = json.dumps({"id": delivery, "event": event, "tenant": tenant, "created_at": time.time(),
                           "data": data}, separators=(",", ":")).encode()
        error: str | None = None
        status = "failed"
        attempt = 0
        for attempt in range(1, self.options.max_attempts + 1):  # noqa: B007
            headers = {"Content-Type": "application/json", "Voxline-Event": event, "Voxline-Delivery": delivery,
                       "Voxline-Signature": sign(secret, body), "User-Agent": "voxline-webhooks/1"}
            try:
                response = await self._client.post(url, content=body, headers=headers)
                if 200 <= response.status_code < 300:
                    status, error = "delivered", None
                    break
                error = f"HTTP {response.status_code}"
                if not _retryable(response.status_code):
                    break
            except Exception as e:  # connection refused, timeout, TLS...
                error = type(e).__name__
            if attempt < self.options.max_attempts:
                delay = min(self.options.max_delay_secs, self.options.base_delay_secs * 2 ** (attempt - 1))
                await asyncio.sleep(delay * (0.5 + random.random() / 2))
        if status != "delivered":
            log.warning("- webhook %s %s to tenant %s failed after %d attempts: %s", hook_id, event, tenant,
                        attempt, error)
        with contextlib.suppress(Exception):
            await self.store.record_delivery(delivery, tenant=tenant, webhook_id=hook_id, event=event,
                                             status=status, attempts=attempt, error=error)

    async def close(self, timeout: float = 10.0) -> None:
        """Deliver what is queued (up to ``timeout``), then stop."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._flush(), timeout)
        if self._worker is not None:
            self._worker.cancel()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, *([self._worker] if self._worker else []), return_exceptions=True)
        await self._client.aclose()

    async def _flush(self) -> None:
        while self._tasks or not self._queue.empty():
            if not self._queue.empty():
                await self._queue.join()
            if self._tasks:
                await asyncio.gather(*list(self._tasks), return_exceptions=True)

"""Raw Media Streams clients for tests that send what Twilio never would, per-call
tokens minted with the server's secret, and an event-loop lag meter."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Iterable
from typing import Any

import websockets
from twilio.request_validator import RequestValidator

from voxline.transports import call_token

from .conftest import ACCOUNT, TOKEN

STREAM_SID = "MZ" + "0" * 31 + "1"
CALLER = "+15557654321"
NUMBER = "+15550001111"


def identity(*, agent: str = "restaurant", direction: str = "inbound", from_: str = CALLER,
             to: str = NUMBER) -> dict[str, str]:
    """The <Parameter>s a webhook puts on the <Stream>, without the token."""
    return {"agent": agent, "direction": direction, "from": from_, "to": to}


def token_params(call_sid: str, *, now: float | None = None, **who: str) -> dict[str, str]:
    """<Parameter>s with a token minted by this process's server secret (as our TwiML would)."""
    params = identity(**who)
    return {**params, "token": call_token.issue(call_token.server_secret(), call_sid, params, now=now)}


def start_message(call_sid: str, parameters: dict[str, str], **start: Any) -> dict[str, Any]:
    """Twilio's `start`; ``start`` overrides (or, set to None, removes) fields of its body."""
    body: dict[str, Any] = {
        "accountSid": ACCOUNT, "streamSid": STREAM_SID, "callSid": call_sid, "tracks": ["inbound"],
        "customParameters": parameters,
        "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
    }
    for key, value in start.items():
        if value is None:
            body.pop(key, None)
        else:
            body[key] = value
    return {"event": "start", "sequenceNumber": "1", "start": body, "streamSid": STREAM_SID}


def signature_headers(url: str, auth_token: str = TOKEN) -> dict[str, str]:
    return {"X-Twilio-Signature": RequestValidator(auth_token).compute_signature(url, {})}


async def raw_stream(url: str, messages: Iterable[str | dict[str, Any]], *,
                     timeout: float = 5.0) -> tuple[int | None, int]:
    """Open a signed stream, send ``messages`` and wait for the server to close it.

    Returns (close code, messages the server sent): (None, n) if it was still open
    after ``timeout``.
    """
    received = 0
    async with websockets.connect(url, additional_headers=signature_headers(url), max_size=None) as ws:
        with contextlib.suppress(websockets.ConnectionClosed):
            for message in [{"event": "connected", "protocol": "Call", "version": "1.0.0"}, *messages]:
                await ws.send(message if isinstance(message, str) else json.dumps(message))
        with contextlib.suppress(websockets.ConnectionClosed, TimeoutError):
            async with asyncio.timeout(timeout):
                async for _ in ws:
                    received += 1
        return ws.close_code, received


class LoopLag:
    """The worst delay of a 10 ms ticker while the block runs: did anything stall the loop?"""

    def __init__(self, tick: float = 0.01) -> None:
        self.tick = tick
        self.worst = 0.0
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            t0 = time.perf_counter()
            await asyncio.sleep(self.tick)
            self.worst = max(self.worst, time.perf_counter() - t0 - self.tick)

    async def __aenter__(self) -> LoopLag:
        self._task = asyncio.create_task(self._run())
        await asyncio.sleep(0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


async def eventually(predicate: Any, timeout: float, step: float = 0.02) -> bool:
    """Poll ``predicate`` (sync or async) until true or ``timeout``; its last answer."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value or time.monotonic() >= deadline:
            return bool(value)
        await asyncio.sleep(step)

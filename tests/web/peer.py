"""A WebRTC visitor without a browser: aiortc does what the widget does over HTTP.

``POST /web/NAME/session`` for a token, then one ``POST /web/NAME/offer`` that carries
every ICE candidate (aiortc gathers before it sends, as the widget waits for its
gathering), then it listens. Each request can go over a connection of its choosing,
so a test can send the token's request to one server worker and the offer to another.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import numpy as np

AUDIBLE_RMS = 300.0  # 16-bit samples; the server's silence is zeros


@dataclass
class Visitor:
    """One visitor's peer connection and what it heard (seconds of audible audio)."""

    base: str
    agent: str
    origin: str
    session: dict[str, Any] = field(default_factory=dict)
    heard_secs: float = 0.0
    pc: Any = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def client(self) -> httpx.AsyncClient:
        """A client on one connection of its own (keep-alive: later requests reuse it)."""
        return httpx.AsyncClient(headers={"Origin": self.origin}, timeout=20,
                                 limits=httpx.Limits(max_connections=1))

    async def take_token(self, client: httpx.AsyncClient) -> None:
        reply = await client.post(f"{self.base}/web/{self.agent}/session", json={})
        assert reply.status_code == 200, reply.text
        self.session = reply.json()

    async def offer(self, client: httpx.AsyncClient) -> None:
        from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
        from aiortc.mediastreams import AudioStreamTrack

        self.pc = pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        pc.addTrack(AudioStreamTrack())  # the microphone: silence

        @pc.on("track")
        def _track(track: Any) -> None:
            task = asyncio.create_task(self._listen(track))
            self._tasks.add(task)

        await pc.setLocalDescription(await pc.createOffer())  # gathers every candidate first
        reply = await client.post(self.session["offer_url"], json={"sdp": pc.localDescription.sdp, "type": "offer"},
                                  headers={"Authorization": f"Bearer {self.session['token']}"})
        assert reply.status_code == 200, reply.text
        answer = reply.json()
        await pc.setRemoteDescription(RTCSessionDescription(sdp=answer["sdp"], type=answer["type"]))

    async def _listen(self, track: Any) -> None:
        from aiortc.mediastreams import MediaStreamError

        with contextlib.suppress(MediaStreamError):
            while True:
                frame = await track.recv()
                samples = frame.to_ndarray().astype(np.float32)
                if np.sqrt(np.mean(samples * samples)) > AUDIBLE_RMS:
                    self.heard_secs += frame.samples / frame.sample_rate

    async def wait_heard(self, secs: float, timeout: float) -> bool:
        """Until ``secs`` of audible audio arrived (bounded by ``timeout``)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.heard_secs < secs:
            if loop.time() > deadline:
                return False
            await asyncio.sleep(0.05)
        return True

    @property
    def connected(self) -> bool:
        return self.pc is not None and self.pc.connectionState == "connected"

    async def hang_up(self) -> None:
        if self.pc is not None:
            await self.pc.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


async def worker_calls(client: httpx.AsyncClient, base: str) -> int:
    """How many calls the worker behind ``client``'s connection holds (``/healthz``)."""
    reply = await client.get(f"{base}/healthz")
    return int(reply.json()["active_calls"])


@contextlib.asynccontextmanager
async def client_on_worker(visitor: Visitor, active_calls: int, tries: int = 60) -> AsyncIterator[httpx.AsyncClient]:
    """A fresh connection that landed on the worker holding ``active_calls`` calls."""
    for _ in range(tries):
        async with visitor.client() as client:
            if await worker_calls(client, visitor.base) == active_calls:
                yield client
                return
    raise AssertionError(f"no connection reached a worker with {active_calls} call(s) in {tries} tries")

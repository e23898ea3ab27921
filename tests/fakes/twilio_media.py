"""A Twilio Media Streams client that behaves like Twilio, on a real websocket.

It sends `connected` and `start`, then a `media` message every 20 ms (160 bytes of
μ-law, base64) -- the caller's speech when there is some, silence otherwise, as
Twilio does. Agent audio it receives goes into a playout buffer "played" in real
time; a `mark` is echoed once the audio queued before it has played, and `clear`
empties the buffer and echoes the pending marks at once (Twilio's documented
behaviour). Everything received and played is recorded for assertions.
"""

from __future__ import annotations

import asyncio
import audioop
import base64
import contextlib
import json
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field

import websockets
from twilio.request_validator import RequestValidator

CHUNK = 160  # 20 ms of 8 kHz μ-law
SILENCE = b"\xff" * CHUNK


def pcm_to_ulaw(pcm: bytes) -> bytes:
    return audioop.lin2ulaw(pcm, 2)


def ulaw_to_pcm(ulaw: bytes) -> bytes:
    return audioop.ulaw2lin(ulaw, 2)


@dataclass
class Received:
    at: float
    message: dict


@dataclass
class FakeTwilioCall:
    url: str  # ws://127.0.0.1:PORT/twilio/stream
    call_sid: str = "CA00000000000000000000000000000001"
    stream_sid: str = "MZ00000000000000000000000000000001"
    account_sid: str = "AC00000000000000000000000000000000"
    parameters: Mapping[str, str] = field(default_factory=lambda: {"agent": "test"})
    auth_token: str | None = "test-token"
    echo_marks: bool = True

    def __post_init__(self) -> None:
        self.received: list[Received] = []
        self.played = bytearray()  # μ-law actually "played" to the caller
        self.played_media_ats: list[float] = []
        self.media_arrivals: list[tuple[float, int]] = []  # (time, bytes) of agent audio
        self.clears: list[float] = []
        self.marks_echoed: list[str] = []
        self.first_media_at: float | None = None
        self.start_sent_at: float | None = None
        self._playout: deque[tuple[str, bytes | str]] = deque()
        self._speech: deque[bytes] = deque()
        self._seq = 0
        self._chunk = 0
        self._ws: websockets.ClientConnection | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._send_lock = asyncio.Lock()
        self.closed = asyncio.Event()
        self.sent_media = 0
        self._said = asyncio.Event()  # set while no caller speech is queued
        self._said.set()

    # -- lifecycle -------------------------------------------------------------
    async def connect(self, *, send_start: bool = True) -> None:
        headers = {}
        if self.auth_token:
            sig = RequestValidator(self.auth_token).compute_signature(self.url, {})
            headers["X-Twilio-Signature"] = sig
        self._ws = await websockets.connect(self.url, additional_headers=headers, max_queue=None)
        await self.send_json({"event": "connected", "protocol": "Call", "version": "1.0.0"})
        if send_start:
            await self.send_start()
        self._tasks = [
            asyncio.create_task(self._receive_loop()),
            asyncio.create_task(self._media_loop()),
            asyncio.create_task(self._playout_loop()),
        ]

    async def send_start(self) -> None:
        self.start_sent_at = time.monotonic()
        await self.send_json({
            "event": "start",
            "sequenceNumber": self._next_seq(),
            "start": {
                "accountSid": self.account_sid,
                "streamSid": self.stream_sid,
                "callSid": self.call_sid,
                "tracks": ["inbound"],
                "customParameters": dict(self.parameters),
                "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
            },
            "streamSid": self.stream_sid,
        })

    async def send_stop(self) -> None:
        """Twilio's `stop` (the caller hung up); the socket stays open for the server to close."""
        try:
            await self.send_json({
                "event": "stop", "sequenceNumber": self._next_seq(), "streamSid": self.stream_sid,
                "stop": {"accountSid": self.account_sid, "callSid": self.call_sid},
            })
        except websockets.ConnectionClosed:
            pass  # the server hung up first

    async def stop(self) -> None:
        """Caller hangs up: `stop`, then Twilio closes the socket."""
        await self.send_stop()
        await self.close()

    @property
    def close_code(self) -> int | None:
        """The close code the server sent, once the socket is closed."""
        return self._ws.close_code if self._ws is not None else None

    def stall(self) -> None:
        """Stop reading the socket at the TCP level (a consumer that fell over): the
        server's messages pile up in kernel buffers; media keeps flowing to the server."""
        assert self._ws is not None
        self._ws.transport.pause_reading()

    def resume(self) -> None:
        assert self._ws is not None
        self._ws.transport.resume_reading()

    async def drop(self) -> None:
        """The network dies: no `stop`, the TCP connection is simply gone."""
        for task in self._tasks:
            task.cancel()
        if self._ws is not None:
            self._ws.transport.abort()
        self.closed.set()

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._ws is not None:
            await self._ws.close()
        self.closed.set()

    # -- caller side -----------------------------------------------------------
    def say(self, pcm8k: bytes) -> None:
        """Queue caller speech (16-bit 8 kHz PCM); it is streamed in real time."""
        ulaw = pcm_to_ulaw(pcm8k)
        for i in range(0, len(ulaw), CHUNK):
            self._speech.append(ulaw[i:i + CHUNK].ljust(CHUNK, b"\xff"))
        if self._speech:
            self._said.clear()

    async def wait_said(self, timeout: float = 30) -> None:
        """Until the queued speech has been streamed (or ``timeout`` passed)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._said.wait(), timeout)

    async def send_dtmf(self, digit: str) -> None:
        await self.send_json({
            "event": "dtmf", "streamSid": self.stream_sid, "sequenceNumber": self._next_seq(),
            "dtmf": {"track": "inbound_track", "digit": digit},
        })

    def media_message(self, ulaw: bytes, seq: int | None = None) -> dict:
        self._chunk += 1
        return {
            "event": "media",
            "sequenceNumber": str(seq) if seq is not None else self._next_seq(),
            "media": {
                "track": "inbound", "chunk": str(self._chunk),
                "timestamp": str(self._chunk * 20), "payload": base64.b64encode(ulaw).decode(),
            },
            "streamSid": self.stream_sid,
        }

    async def send_json(self, message: dict) -> None:
        await self.send_raw(json.dumps(message))

    async def send_raw(self, text: str) -> None:
        assert self._ws is not None
        async with self._send_lock:
            await self._ws.send(text)

    def next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def _next_seq(self) -> str:
        return str(self.next_seq())

    async def _media_loop(self) -> None:
        """20 ms media cadence on an absolute clock, like Twilio's."""
        t0 = time.monotonic()
        n = 0
        while not self.closed.is_set():
            chunk = self._speech.popleft() if self._speech else SILENCE
            if not self._speech:
                self._said.set()
            try:
                await self.send_json(self.media_message(chunk))
            except websockets.ConnectionClosed:
                return  # the server hung up: Twilio stops streaming too
            self.sent_media += 1
            n += 1
            await asyncio.sleep(max(0.0, t0 + n * 0.02 - time.monotonic()))

    # -- agent side ------------------------------------------------------------
    async def _receive_loop(self) -> None:
        assert self._ws is not None
        try:
            async for raw in self._ws:
                now = time.monotonic()
                message = json.loads(raw)
                self.received.append(Received(now, message))
                event = message.get("event")
                if event == "media":
                    ulaw = base64.b64decode(message["media"]["payload"])
                    if self.first_media_at is None:
                        self.first_media_at = now
                    self.media_arrivals.append((now, len(ulaw)))
                    self._playout.append(("audio", ulaw))
                elif event == "mark":
                    self._playout.append(("mark", message["mark"]["name"]))
                elif event == "clear":
                    self.clears.append(now)
                    pending = [v for k, v in self._playout if k == "mark"]
                    self._playout.clear()
                    for name in pending:  # Twilio echoes marks of cleared audio
                        await self._echo(str(name))
        except websockets.ConnectionClosed:
            pass
        finally:
            self.closed.set()

    async def _playout_loop(self) -> None:
        """Play 20 ms of buffered agent audio per tick; echo marks as they are reached."""
        t0 = time.monotonic()
        n = 0
        while True:
            budget = CHUNK
            while self._playout and (budget > 0 or self._playout[0][0] == "mark"):
                kind, value = self._playout[0]
                if kind == "mark":
                    self._playout.popleft()
                    await self._echo(str(value))
                    continue
                assert isinstance(value, bytes)
                take = value[:budget]
                self.played += take
                budget -= len(take)
                if len(take) == len(value):
                    self._playout.popleft()
                else:
                    self._playout[0] = ("audio", value[len(take):])
            if budget < CHUNK:
                self.played_media_ats.append(time.monotonic())
            n += 1
            await asyncio.sleep(max(0.0, t0 + n * 0.02 - time.monotonic()))

    async def _echo(self, name: str) -> None:
        if not self.echo_marks:
            return
        self.marks_echoed.append(name)
        try:
            await self.send_json({
                "event": "mark", "sequenceNumber": self._next_seq(),
                "streamSid": self.stream_sid, "mark": {"name": name},
            })
        except websockets.ConnectionClosed:
            pass

    async def wait_answered(self, since: float, *, quiet: float = 0.8, timeout: float = 30) -> None:
        """Until the agent spoke after ``since`` (monotonic) and then went quiet for ``quiet`` s."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ats = self.played_media_ats
            if ats and ats[-1] > since and time.monotonic() - ats[-1] >= quiet:
                return
            await asyncio.sleep(0.05)
        raise TimeoutError(f"the agent did not answer within {timeout} s")

    # -- assertions helpers ----------------------------------------------------
    def events(self, name: str) -> list[Received]:
        return [r for r in self.received if r.message.get("event") == name]

    def played_pcm(self) -> bytes:
        return ulaw_to_pcm(bytes(self.played))

    def received_pcm(self) -> bytes:
        return ulaw_to_pcm(b"".join(
            base64.b64decode(r.message["media"]["payload"]) for r in self.events("media")
        ))

"""A simulated phone line: a scripted caller talks to the real pipeline in real time.

The caller's side (``CallerLine``) sends 20 ms frames at a steady real-time pace —
silence when the caller has nothing to say, as a phone line does — and receives the
agent's audio as it is played, paced in real time like a phone's speaker. Every
received chunk is stamped, so latencies are measured where the caller is.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import numpy as np
from pipecat.frames.frames import (
    CancelFrame,
    EndFrame,
    InputAudioRawFrame,
    OutputAudioRawFrame,
    StartFrame,
)
from pipecat.transports.base_input import BaseInputTransport
from pipecat.transports.base_output import BaseOutputTransport
from pipecat.transports.base_transport import BaseTransport, TransportParams

FRAME_MS = 20
# Peak amplitude above which received audio counts as speech, not silence or dither.
SPEECH_PEAK = 500


@dataclass
class Received:
    at: float  # time.monotonic() when the chunk was played to the caller
    pcm: bytes


@dataclass
class CallerLine:
    """The caller's end of the line."""

    sample_rate: int = 16000
    received: list[Received] = field(default_factory=list)
    _outgoing: bytearray = field(default_factory=bytearray)
    _speech_done: asyncio.Event = field(default_factory=asyncio.Event)
    last_speech_sent_at: float | None = None

    @property
    def frame_bytes(self) -> int:
        return self.sample_rate * FRAME_MS // 1000 * 2

    def say(self, pcm: bytes) -> asyncio.Event:
        """Queue 16-bit mono PCM to speak; the returned event is set when it has been sent."""
        self._outgoing.extend(pcm)
        self._speech_done = asyncio.Event()
        return self._speech_done

    def next_frame(self) -> bytes:
        n = self.frame_bytes
        if self._outgoing:
            chunk = bytes(self._outgoing[:n]).ljust(n, b"\0")
            del self._outgoing[:n]
            if not self._outgoing:
                self.last_speech_sent_at = time.monotonic()
                self._speech_done.set()
            return chunk
        return bytes(n)

    @property
    def speaking(self) -> bool:
        return bool(self._outgoing)

    def heard_since(self, since: float) -> bytes:
        return b"".join(r.pcm for r in self.received if r.at >= since)

    def first_speech_after(self, since: float) -> float | None:
        for r in self.received:
            if r.at >= since and np.abs(np.frombuffer(r.pcm, dtype=np.int16)).max(initial=0) > SPEECH_PEAK:
                return r.at
        return None


class _CallerInput(BaseInputTransport):
    def __init__(self, line: CallerLine, params: TransportParams):
        super().__init__(params)
        self._line = line
        self._pump: asyncio.Task[None] | None = None

    async def start(self, frame: StartFrame) -> None:
        await super().start(frame)
        await self.set_transport_ready(frame)
        if self._pump is None:
            self._pump = self.create_task(self._run_pump(), "caller-pump")

    async def _run_pump(self) -> None:
        # An absolute schedule, so the pace doesn't drift with processing time.
        start, n = time.monotonic(), 0
        while True:
            await self.push_audio_frame(InputAudioRawFrame(
                audio=self._line.next_frame(), sample_rate=self._line.sample_rate, num_channels=1,
            ))
            n += 1
            await asyncio.sleep(max(0.0, start + n * FRAME_MS / 1000 - time.monotonic()))

    async def _stop_pump(self) -> None:
        if self._pump is not None:
            await self.cancel_task(self._pump)
            self._pump = None

    async def stop(self, frame: EndFrame) -> None:
        await self._stop_pump()
        await super().stop(frame)

    async def cancel(self, frame: CancelFrame) -> None:
        await self._stop_pump()
        await super().cancel(frame)

    async def cleanup(self) -> None:
        await self._stop_pump()
        await super().cleanup()


class _CallerOutput(BaseOutputTransport):
    def __init__(self, line: CallerLine, params: TransportParams):
        super().__init__(params)
        self._line = line
        self._next_at = 0.0

    async def start(self, frame: StartFrame) -> None:
        await super().start(frame)
        await self.set_transport_ready(frame)

    async def write_audio_frame(self, frame: OutputAudioRawFrame) -> bool:
        # Play in real time: a chunk is "heard" when its turn comes, not when it's made.
        now = time.monotonic()
        if self._next_at < now:
            self._next_at = now
        else:
            await asyncio.sleep(self._next_at - now)
        self._line.received.append(Received(at=time.monotonic(), pcm=frame.audio))
        self._next_at += len(frame.audio) / 2 / frame.sample_rate
        return True


class SimulatedTransport(BaseTransport):
    def __init__(self, line: CallerLine):
        super().__init__()
        params = TransportParams(
            audio_in_enabled=True, audio_in_sample_rate=line.sample_rate,
            audio_out_enabled=True, audio_out_sample_rate=line.sample_rate,
            audio_out_auto_silence=False,
        )
        self._input = _CallerInput(line, params)
        self._output = _CallerOutput(line, params)

    def input(self) -> _CallerInput:
        return self._input

    def output(self) -> _CallerOutput:
        return self._output


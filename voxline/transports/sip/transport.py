"""The Pipecat transport of one SIP call: caller audio and keypad in, paced agent audio out.

* **Input.** RTP arrives in a datagram callback; decoded batches and DTMF digits are
  put on a bounded queue (drop-oldest, counted) that a task feeds into the pipeline
  as ``InputAudioRawFrame`` / ``InputDTMFFrame``.
* **Output.** Agent audio is cut into 20 ms packets and sent in real time on an
  absolute schedule (one packet per 20 ms, lateness measured), so what was *sent* is
  what the caller is hearing, give or take the far end's jitter buffer. Each packet
  is entered in a :class:`~voxline.transports.twilio.marks.MarkLedger`; its mark is
  "echoed" ``playout_delay_secs`` later. That is what the heard-text tracker (shared
  with the Twilio transport) reads to keep only the words that were played when the
  caller barges in.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from pipecat.frames.frames import (
    BotStoppedSpeakingFrame,
    CancelFrame,
    EndFrame,
    Frame,
    InputAudioRawFrame,
    InputDTMFFrame,
    InterruptionFrame,
    KeypadEntry,
    OutputAudioRawFrame,
    StartFrame,
    TTSStartedFrame,
)
from pipecat.processors.frame_processor import FrameDirection
from pipecat.transports.base_input import BaseInputTransport
from pipecat.transports.base_output import BaseOutputTransport
from pipecat.transports.base_transport import BaseTransport, TransportParams

from voxline.transports.twilio.marks import MarkLedger

from .rtp import PACKET_SECS, RtpMedia

_LATENESS_BINS = 201  # 1 ms bins, the last one is "200 ms or more"


class SendClock:
    """Lateness of each packet against its slot on the schedule: the send jitter."""

    def __init__(self) -> None:
        self.histogram = [0] * _LATENESS_BINS
        self.count = 0
        self.first_sent_at: float | None = None

    def note(self, lateness_secs: float) -> None:
        self.histogram[min(_LATENESS_BINS - 1, max(0, int(lateness_secs * 1000)))] += 1
        self.count += 1

    def percentile_ms(self, q: float) -> float:
        if not self.count:
            return 0.0
        target, seen = q * self.count, 0
        for ms, n in enumerate(self.histogram):
            seen += n
            if seen >= target:
                return float(ms)
        return float(_LATENESS_BINS - 1)


class SipInput(BaseInputTransport):
    def __init__(self, params: TransportParams, *, max_backlog: int = 50) -> None:
        super().__init__(params)
        self._rate = params.audio_in_sample_rate or 8000
        self._queue: asyncio.Queue[Frame] = asyncio.Queue()
        self._max_backlog = max_backlog
        self._pump: asyncio.Task[None] | None = None
        self.audio_dropped = 0

    def feed_audio(self, pcm: bytes) -> None:
        while self._queue.qsize() >= self._max_backlog:
            self._queue.get_nowait()
            self.audio_dropped += 1
        self._queue.put_nowait(InputAudioRawFrame(audio=pcm, sample_rate=self._rate, num_channels=1))

    def feed_dtmf(self, digit: str) -> None:
        try:
            self._queue.put_nowait(InputDTMFFrame(button=KeypadEntry(digit)))
        except ValueError:
            pass  # A-D: no keypad entry for them

    async def start(self, frame: StartFrame) -> None:
        await super().start(frame)
        await self.set_transport_ready(frame)
        if self._pump is None:
            self._pump = self.create_task(self._run_pump(), "sip-input")

    async def _run_pump(self) -> None:
        while True:
            frame = await self._queue.get()
            if isinstance(frame, InputAudioRawFrame):
                await self.push_audio_frame(frame)
            else:
                await self.push_frame(frame)

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


class SipOutput(BaseOutputTransport):
    def __init__(self, params: TransportParams, media: RtpMedia, ledger: MarkLedger, *,
                 playout_delay_secs: float) -> None:
        super().__init__(params)
        self._media = media
        self._packet_bytes = media.packet_bytes
        self._ledger = ledger
        self._delay = playout_delay_secs
        self._slot: float | None = None  # when the next packet is due
        self._pending = bytearray()  # less than a packet, waiting for more
        self._generation = 0  # bumped on interruption
        self.clock = SendClock()

    async def start(self, frame: StartFrame) -> None:
        await super().start(frame)
        await self.set_transport_ready(frame)

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, InterruptionFrame):
            self._pending.clear()
            self._slot = None
            self._generation += 1
            self._ledger.clear()  # what is still in flight never counts as heard

    async def write_transport_frame(self, frame: Frame) -> None:
        # In order with audio writes: where this TTS context begins on the sent timeline.
        if isinstance(frame, TTSStartedFrame):
            self._ledger.begin_context(frame.context_id)
        await super().write_transport_frame(frame)

    async def push_frame(self, frame: Frame, direction: FrameDirection = FrameDirection.DOWNSTREAM) -> None:
        if isinstance(frame, BotStoppedSpeakingFrame) and direction == FrameDirection.DOWNSTREAM:
            if self._pending:  # the tail of the utterance, padded to a whole packet
                await self._send(bytes(self._pending).ljust(self._packet_bytes, b"\0"))
                self._pending.clear()
            self._played_later(self._ledger.flush())
        await super().push_frame(frame, direction)

    async def write_audio_frame(self, frame: OutputAudioRawFrame) -> bool:
        self._pending += frame.audio
        while len(self._pending) >= self._packet_bytes:
            packet = bytes(self._pending[: self._packet_bytes])
            del self._pending[: self._packet_bytes]
            await self._send(packet)
        return True

    async def _send(self, packet: bytes) -> None:
        now, slot, generation = time.monotonic(), self._slot, self._generation
        if slot is None or now - slot > PACKET_SECS:
            slot = now  # first packet of a talk spurt (or we fell behind): restart
        elif slot > now:
            await asyncio.sleep(slot - now)
            if generation != self._generation:
                return  # interrupted while waiting for its slot: never sent
            now = time.monotonic()
        self._media.send(packet)
        if self.clock.first_sent_at is None:
            self.clock.first_sent_at = now
        self.clock.note(now - slot)
        self._slot = slot + PACKET_SECS
        self._played_later(self._ledger.audio_sent(PACKET_SECS))

    def _played_later(self, mark: str | None) -> None:
        if mark is not None:
            asyncio.get_running_loop().call_later(self._delay, self._ledger.echo, mark)


class SipTransport(BaseTransport):
    """Input and output of one call; ``on_client_disconnected`` fires when media is lost."""

    def __init__(self, media: RtpMedia, ledger: MarkLedger, *, playout_delay_secs: float = 0.06,
                 max_backlog: int = 50) -> None:
        super().__init__()
        params = TransportParams(
            audio_in_enabled=True, audio_in_sample_rate=media.rate,
            audio_out_enabled=True, audio_out_sample_rate=media.rate,
            audio_out_10ms_chunks=2, audio_out_auto_silence=False,
        )
        self._input = SipInput(params, max_backlog=max_backlog)
        self._output = SipOutput(params, media, ledger, playout_delay_secs=playout_delay_secs)
        media.on_audio = self._input.feed_audio
        media.on_dtmf = self._input.feed_dtmf
        self._register_event_handler("on_client_disconnected")

    def input(self) -> SipInput:
        return self._input

    def output(self) -> SipOutput:
        return self._output

    async def disconnected(self, *args: Any) -> None:
        await self._call_event_handler("on_client_disconnected", *args)

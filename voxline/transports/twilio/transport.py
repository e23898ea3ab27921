"""Pipecat FastAPI websocket transport specialised for Twilio Media Streams.

Three things pipecat's generic websocket output does not do for us:

* send a `mark` after each media message -- a serializer returns one message per
  frame, so the transport sends the mark the serializer hands over;
* pace outbound audio in real time with a small lead. Pipecat's websocket output
  sends at twice real time, which piles seconds of audio into Twilio's buffer: a
  barge-in then relies entirely on `clear`, and "what the caller heard" drifts far
  from "what we sent". A small lead (100 ms for phone calls, see TwilioCall.create) keeps Twilio fed without that;
* note where each TTS context's audio starts on the sent-audio timeline, so the
  heard-text gate can translate mark echoes into words (see :mod:`.heard`).

Slow consumers never grow memory without limit:

* inbound, the input queue is bounded: if the pipeline falls behind real time we
  drop the oldest caller audio (counted);
* outbound, if the far end stops consuming -- Twilio's marks stop coming back, so
  the audio it holds unplayed exceeds ``max_unplayed_secs`` -- agent audio is
  dropped (counted, still paced in real time) instead of piling up in socket
  buffers; it resumes as soon as the echoes catch up;
* a single write that blocks longer than ``audio_out_write_timeout_secs`` (a peer
  that stopped reading with full TCP buffers) makes pipecat's output report the
  transport unusable, which ends the call.
"""

from __future__ import annotations

import asyncio
import logging
import time

from fastapi import WebSocket
from pipecat.frames.frames import (
    BotStoppedSpeakingFrame,
    Frame,
    InputAudioRawFrame,
    InterruptionFrame,
    OutputAudioRawFrame,
    TTSStartedFrame,
)
from pipecat.processors.frame_processor import FrameDirection
from pipecat.transports.websocket.fastapi import (
    FastAPIWebsocketInputTransport,
    FastAPIWebsocketOutputTransport,
    FastAPIWebsocketParams,
    FastAPIWebsocketTransport,
)

from .serializer import VoxlineTwilioSerializer

log = logging.getLogger("voxline.twilio")


class TwilioInputTransport(FastAPIWebsocketInputTransport):
    """Input with a bounded audio queue (drop-oldest, counted)."""

    def __init__(self, *args, max_audio_backlog: int, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(*args, **kwargs)
        self.max_audio_backlog = max_audio_backlog
        self.audio_dropped = 0
        self.audio_backlog_peak = 0

    async def push_audio_frame(self, frame: InputAudioRawFrame) -> None:
        # `_audio_in_queue` is pipecat's (unbounded) queue; we only trim it.
        queue: asyncio.Queue[InputAudioRawFrame] | None = getattr(self, "_audio_in_queue", None)
        if queue is not None:
            while queue.qsize() >= self.max_audio_backlog:
                try:
                    queue.get_nowait()
                    queue.task_done()
                except asyncio.QueueEmpty:
                    break
                self.audio_dropped += 1
            self.audio_backlog_peak = max(self.audio_backlog_peak, queue.qsize() + 1)
        await super().push_audio_frame(frame)


class TwilioOutputTransport(FastAPIWebsocketOutputTransport):
    """Output that follows each media message with a mark and paces in real time."""

    def __init__(self, *args, lead_secs: float, max_unplayed_secs: float,  # type: ignore[no-untyped-def]
                 **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._lead = lead_secs
        self._max_unplayed = max_unplayed_secs
        self._play_clock: float | None = None  # when Twilio will have played all we sent
        self.audio_out_dropped = 0  # chunks not sent: the far end was not consuming
        self.backlog_peak_secs = 0.0

    @property
    def serializer(self) -> VoxlineTwilioSerializer:
        serializer = self._params.serializer
        assert isinstance(serializer, VoxlineTwilioSerializer)
        return serializer

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, InterruptionFrame):
            self._play_clock = None  # Twilio's buffer is empty after `clear`

    async def write_transport_frame(self, frame: Frame) -> None:
        # Called from the audio task in order with audio writes: the exact point
        # where this TTS context's audio begins on the sent timeline.
        if isinstance(frame, TTSStartedFrame):
            self.serializer.ledger.begin_context(frame.context_id)
        await super().write_transport_frame(frame)

    async def push_frame(self, frame: Frame, direction: FrameDirection = FrameDirection.DOWNSTREAM) -> None:
        # The audio task announces the end of each utterance (after its last chunk was
        # written): mark the tail, so "all played" can be known.
        if isinstance(frame, BotStoppedSpeakingFrame) and direction == FrameDirection.DOWNSTREAM:
            await self._send_mark(self.serializer.flush_mark())
        await super().push_frame(frame, direction)

    async def _send_mark(self, mark: str | None) -> None:
        if mark and self._client.is_connected and not self._client.is_closing:
            await self._client.send(mark)

    async def write_audio_frame(self, frame: OutputAudioRawFrame) -> bool:
        if self._client.is_closing or not self._client.is_connected:
            return False
        secs = len(frame.audio) / (2 * frame.num_channels * frame.sample_rate)
        backlog = self.serializer.ledger.backlog_secs
        self.backlog_peak_secs = max(self.backlog_peak_secs, backlog)
        if backlog > self._max_unplayed:
            self.audio_out_dropped += 1
            await self._pace(secs)
            return True
        frame = OutputAudioRawFrame(
            audio=frame.audio,
            sample_rate=self.sample_rate,
            num_channels=self._params.audio_out_channels,
        )
        if not await self._write_frame(frame):
            return False
        await self._send_mark(self.serializer.take_mark())
        await self._pace(secs)
        return True

    async def _pace(self, secs: float) -> None:
        now = time.monotonic()
        if self._play_clock is None or self._play_clock < now:
            self._play_clock = now  # Twilio ran dry (or we just started): restart the clock
        self._play_clock += secs
        delay = self._play_clock - now - self._lead
        if delay > 0:
            await asyncio.sleep(delay)


class TwilioStreamTransport(FastAPIWebsocketTransport):
    """A ``FastAPIWebsocketTransport`` wired with the Twilio input/output above."""

    def __init__(
        self,
        websocket: WebSocket,
        serializer: VoxlineTwilioSerializer,
        *,
        params: FastAPIWebsocketParams | None = None,
        lead_secs: float = 0.06,
        max_audio_backlog: int = 100,
        max_unplayed_secs: float = 5.0,
    ) -> None:
        params = params or twilio_transport_params()
        params.serializer = serializer
        params.allowed_origins = []  # Twilio sends no Origin; the stream is authenticated by its start
        super().__init__(websocket, params)
        # Replace pipecat's input/output with ours, sharing the same client.
        self._input = TwilioInputTransport(
            self, self._client, self._params, name=self._input_name,
            max_audio_backlog=max_audio_backlog,
        )
        self._output = TwilioOutputTransport(
            self, self._client, self._params, name=self._output_name, lead_secs=lead_secs,
            max_unplayed_secs=max_unplayed_secs,
        )

    @property
    def serializer(self) -> VoxlineTwilioSerializer:
        serializer = self._params.serializer
        assert isinstance(serializer, VoxlineTwilioSerializer)
        return serializer

    def input(self) -> TwilioInputTransport:
        assert isinstance(self._input, TwilioInputTransport)
        return self._input

    def output(self) -> TwilioOutputTransport:
        assert isinstance(self._output, TwilioOutputTransport)
        return self._output


def twilio_transport_params(**overrides: object) -> FastAPIWebsocketParams:
    """Transport params for a phone line: 8 kHz in and out, 80 ms output chunks.

    Running the pipeline at 8 kHz means μ-law is decoded without resampling, and
    Silero VAD supports 8 kHz natively. A TTS producing 16/24 kHz is resampled
    once, in the output transport, straight to 8 kHz.
    """
    values: dict[str, object] = {
        "audio_in_enabled": True,
        "audio_out_enabled": True,
        "audio_in_sample_rate": 8000,
        "audio_out_sample_rate": 8000,
        "audio_out_10ms_chunks": 8,  # 80 ms media messages: a quarter of the per-frame cost of 20 ms
        "add_wav_header": False,
        # A write blocked this long means the peer stopped reading: the call is over.
        "audio_out_write_timeout_secs": 5.0,
    }
    values.update(overrides)
    return FastAPIWebsocketParams(**values)  # type: ignore[arg-type]

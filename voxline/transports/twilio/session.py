"""Everything that belongs to one streamed call, handed to the app's ``on_stream``.

``on_stream(websocket, call)`` only has to put ``call.transport``, ``call.heard``'s two
processors and ``call.dtmf_aggregator()`` (after the STT; it also writes the caller's
lines to the record -- ``call.transcript_observer`` does the same as a pipeline
observer, at a higher per-frame cost) into its pipeline and register ``call.control``'s
tools; the router owns the call record before and after.
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass, field

from fastapi import WebSocket
from pipecat.frames.frames import Frame, InputDTMFFrame, TranscriptionFrame
from pipecat.observers.base_observer import BaseObserver, FramePushed
from pipecat.processors.aggregators.dtmf_aggregator import DTMFAggregator
from pipecat.processors.frame_processor import FrameDirection

from .heard import HeardLine, HeardTextTracker
from .marks import MarkLedger
from .messages import CallInfo
from .records import CallRecords, TranscriptLine
from .rest import TwilioRestClient
from .serializer import VoxlineTwilioSerializer
from .tools import CallControl
from .transport import TwilioStreamTransport, twilio_transport_params

log = logging.getLogger("voxline.twilio")


class TranscriptObserver(BaseObserver):
    """Appends the caller's final transcriptions and keypad digits to the call record."""

    def __init__(self, call_sid: str, records: CallRecords) -> None:
        super().__init__(observe_every_push=False)
        self._call_sid = call_sid
        self._records = records
        self._seen: deque[int] = deque(maxlen=256)  # a frame may be reported by several hops

    async def on_push_frame(self, data: FramePushed) -> None:
        frame = data.frame
        if not isinstance(frame, (TranscriptionFrame, InputDTMFFrame)) or frame.id in self._seen:
            return
        self._seen.append(frame.id)
        if isinstance(frame, TranscriptionFrame):
            line = TranscriptLine("user", frame.text)
        else:
            line = TranscriptLine("dtmf", str(frame.button.value))
        await self._records.append_transcript(self._call_sid, line)


class TranscriptDTMFAggregator(DTMFAggregator):
    """Pipecat's DTMF aggregator that also writes the caller's final transcriptions and
    keypad digits to the call record.

    Same job as :class:`TranscriptObserver`, without its cost: a pipeline observer is
    told about every frame at every hop of the pipeline (through a queue and a task of
    its own), while this sits where both kinds of frame pass anyway (after the STT).
    """

    def __init__(self, call_sid: str, records: CallRecords, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self._call_sid = call_sid
        self._records = records

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        if direction == FrameDirection.DOWNSTREAM:
            if isinstance(frame, TranscriptionFrame):
                await self._records.append_transcript(self._call_sid, TranscriptLine("user", frame.text))
            elif isinstance(frame, InputDTMFFrame):
                line = TranscriptLine("dtmf", str(frame.button.value))
                await self._records.append_transcript(self._call_sid, line)
        await super().process_frame(frame, direction)


@dataclass
class TwilioCall:
    """One call: its identity, transport, heard-text tracker, tools and record."""

    info: CallInfo
    websocket: WebSocket
    transport: TwilioStreamTransport
    heard: HeardTextTracker
    control: CallControl
    transcript_observer: TranscriptObserver
    records: CallRecords
    end_reason: str | None = None  # set by tools ("agent_hung_up", "transferred")
    extras: dict[str, object] = field(default_factory=dict)

    def dtmf_aggregator(self, timeout_secs: float) -> TranscriptDTMFAggregator:
        """Keypad digits to the agent (after the STT), caller lines to the call record."""
        return TranscriptDTMFAggregator(self.info.call_sid, self.records, timeout=timeout_secs)

    @property
    def call_id(self) -> str:
        return self.info.call_sid

    @property
    def serializer(self) -> VoxlineTwilioSerializer:
        return self.transport.serializer

    @property
    def ledger(self) -> MarkLedger:
        return self.serializer.ledger

    def stats(self) -> dict[str, int]:
        s = self.serializer.stats
        m = self.ledger.stats
        return {
            "media_in": s.media_in, "media_out": s.media_out, "malformed": s.malformed,
            "unknown_events": s.unknown_events, "reordered": s.reordered,
            "late_dropped": s.late_dropped, "gaps_skipped": s.gaps_skipped, "dtmf": s.dtmf,
            "marks_sent": m.sent, "marks_echoed": m.echoed, "marks_retired": m.retired,
            "audio_in_dropped": self.transport.input().audio_dropped,
            "audio_in_backlog_peak": self.transport.input().audio_backlog_peak,
            "audio_out_dropped": self.transport.output().audio_out_dropped,
            "audio_out_backlog_peak_ms": int(self.transport.output().backlog_peak_secs * 1000),
        }

    @classmethod
    def create(
        cls,
        websocket: WebSocket,
        info: CallInfo,
        *,
        records: CallRecords,
        rest: TwilioRestClient | None,
        # Outbound defaults chosen with benchmarks/phone_density.py (2 cores, 100 calls):
        # 80 ms media messages with a mark each (12.5 messages/s instead of 50 +
        # 10 marks), and Twilio kept 100 ms ahead so a busy event loop does not
        # starve it (jitter p99 at 100 calls: 314 ms -> 0 after the greeting).
        lead_secs: float = 0.1,
        max_audio_backlog: int = 100,
        interrupted_marker: str | None = " [interrupted]",
        # 80 ms of caller audio per pipeline frame: a quarter of Twilio's message rate,
        # ~25 % less CPU per call than 40 ms; VAD decisions come at most 40 ms later.
        inbound_batch_ms: int = 80,
        mark_interval_secs: float = 0.08,
        max_unplayed_secs: float = 5.0,
        out_chunk_ms: int = 80,
    ) -> TwilioCall:
        params = twilio_transport_params(audio_out_10ms_chunks=max(1, out_chunk_ms // 10))
        serializer = VoxlineTwilioSerializer(
            info.stream_sid,
            call_id=info.call_sid,
            first_sequence=info.start_sequence,
            sample_rate=params.audio_in_sample_rate,
            inbound_batch_ms=inbound_batch_ms,
            mark_interval_secs=mark_interval_secs,
        )
        transport = TwilioStreamTransport(
            websocket, serializer, params=params, lead_secs=lead_secs,
            max_audio_backlog=max_audio_backlog, max_unplayed_secs=max_unplayed_secs,
        )

        async def on_heard(line: HeardLine) -> None:
            await records.append_transcript(
                info.call_sid, TranscriptLine("assistant", line.text, interrupted=line.interrupted)
            )

        heard = HeardTextTracker(
            serializer.ledger, call_id=info.call_sid,
            interrupted_marker=interrupted_marker, on_heard=on_heard,
        )
        call = cls(
            info=info,
            websocket=websocket,
            transport=transport,
            heard=heard,
            control=None,  # type: ignore[arg-type]  # set just below; it needs `call`
            transcript_observer=TranscriptObserver(info.call_sid, records),
            records=records,
        )
        call.control = CallControl(call, rest)
        return call

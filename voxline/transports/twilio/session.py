"""Everything that belongs to one streamed call: the call host's view of a Twilio line.

:class:`TwilioCall` is a :class:`~voxline.pipelines.call_control.CallLine`: the host
puts ``call.transport``, ``call.heard``'s two processors and ``call.dtmf_aggregator()``
into the call's pipeline, and call control acts through ``hang_up`` / ``transfer``
(Twilio REST) once ``wait_heard`` confirms the caller heard the last words.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from fastapi import WebSocket
from pipecat.processors.aggregators.dtmf_aggregator import DTMFAggregator

from voxline.errors import ProviderError
from voxline.pipelines.call_control import CallControl
from voxline.pipelines.session import CallSession

from .heard import HeardTextTracker
from .marks import MarkLedger
from .messages import CallInfo
from .rest import TwilioRestClient
from .serializer import VoxlineTwilioSerializer
from .transport import TwilioStreamTransport, twilio_transport_params
from .voicemail import on_answered_by

log = logging.getLogger("voxline.twilio")


@dataclass
class TwilioCall:
    """One call: its identity, transport, heard-text tracker and REST client."""

    info: CallInfo
    websocket: WebSocket
    transport: TwilioStreamTransport
    heard: HeardTextTracker
    rest: TwilioRestClient | None
    extras: dict[str, object] = field(default_factory=dict)

    def dtmf_aggregator(self, timeout_secs: float) -> DTMFAggregator:
        """Keypad digits to the agent, after the STT."""
        return DTMFAggregator(timeout=timeout_secs)

    @property
    def call_id(self) -> str:
        return self.info.call_sid

    # -- CallLine ----------------------------------------------------------------
    @property
    def epoch(self) -> int:
        return self.ledger.epoch

    @property
    def heard_count(self) -> int:
        return self.heard.heard_count

    async def wait_heard(self, text: str, *, since: int, timeout: float) -> bool:
        return await self.heard.wait_heard(text, since=since, timeout=timeout)

    def _rest_client(self) -> TwilioRestClient:
        if self.rest is None:
            raise ProviderError("no Twilio REST client configured", retryable=False)
        return self.rest

    async def hang_up(self) -> None:
        await self._rest_client().hang_up(self.call_id)

    async def transfer(self, target: str) -> None:
        await self._rest_client().transfer(self.call_id, target)

    async def on_answered_by(self, control: CallControl, session: CallSession, answered_by: str) -> None:
        """Twilio's answering-machine verdict: leave a message, hang up, or carry on."""
        try:
            await on_answered_by(self, control, session.spec.phone.voicemail, answered_by,
                                 session.worker.queue_frame)
        except Exception:
            log.exception("%s answering-machine handling failed", self.call_id)

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

        heard = HeardTextTracker(
            serializer.ledger, call_id=info.call_sid, interrupted_marker=interrupted_marker,
        )
        return cls(info=info, websocket=websocket, transport=transport, heard=heard, rest=rest)

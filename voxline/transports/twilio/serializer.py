"""Frame serializer for Twilio Media Streams, hardened and mark-aware.

Why subclass pipecat's ``TwilioFrameSerializer`` rather than wrap or rewrite it: its
μ-law⇄PCM conversion (one stream resampler each way, straight between 8 kHz and the
pipeline rate -- the single conversion we want) and its `clear` on interruption are
exactly right. What it lacks, we add around it:

* input hardening: malformed JSON, non-object messages and unknown events are
  ignored and counted; media is reordered by ``sequenceNumber`` in a bounded window;
* marks: every agent audio chunk is followed by a `mark` (sent by our transport,
  because a serializer returns one message per frame) and Twilio's echoes feed a
  :class:`~.marks.MarkLedger` that knows what was played;
* hang-up is *not* done here (``auto_hang_up=False``): our REST client owns that, with
  bounded retries and proper errors, and only after the goodbye was heard.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
from dataclasses import dataclass
from typing import Any

from pipecat.audio.dtmf.types import KeypadEntry
from pipecat.frames.frames import (
    AudioRawFrame,
    Frame,
    InputAudioRawFrame,
    InputDTMFFrame,
    InterruptionFrame,
)
from pipecat.serializers.twilio import TwilioFrameSerializer

from .marks import MarkLedger
from .messages import mark_message

log = logging.getLogger("voxline.twilio")

TWILIO_RATE = 8000


@dataclass
class StreamStats:
    """Counters for one stream; surfaced in call records and the benchmark."""

    media_in: int = 0
    malformed: int = 0
    unknown_events: int = 0
    reordered: int = 0
    late_dropped: int = 0
    gaps_skipped: int = 0
    dtmf: int = 0
    media_out: int = 0


class VoxlineTwilioSerializer(TwilioFrameSerializer):
    """Twilio serializer with reordering, counters and mark tracking."""

    def __init__(
        self,
        stream_sid: str,
        *,
        call_id: str,
        ledger: MarkLedger | None = None,
        first_sequence: int | None = None,
        reorder_window: int = 6,
        sample_rate: int | None = None,
        inbound_batch_ms: int = 20,
        mark_interval_secs: float = 0.0,
    ) -> None:
        super().__init__(
            stream_sid,
            params=TwilioFrameSerializer.InputParams(auto_hang_up=False, sample_rate=sample_rate),
        )
        self.call_id = call_id
        self.ledger = ledger or MarkLedger(mark_interval_secs=mark_interval_secs)
        self.stats = StreamStats()
        self.stopped = False  # Twilio sent `stop`: the call ended on Twilio's side
        self.hung_up = asyncio.Event()  # set with `stopped`: the call host ends the call at once
        self._expected = first_sequence + 1 if first_sequence is not None else None
        self._window = max(1, reorder_window)
        # seq -> μ-law payload, or None for a non-media event that only fills the slot
        self._pending: dict[int, bytes | None] = {}
        self._ready = bytearray()  # in-order μ-law not yet returned (after a DTMF, say)
        self._pending_mark: str | None = None
        # Twilio sends 20 ms per message; handing the pipeline 40-80 ms at a time cuts
        # the per-frame cost of every processor and observer (VAD windows are 32 ms).
        self._batch_bytes = max(1, TWILIO_RATE * inbound_batch_ms // 1000)

    # -- outbound --------------------------------------------------------------
    async def serialize(self, frame: Frame) -> str | bytes | None:
        if isinstance(frame, InterruptionFrame):
            self.ledger.clear()
            self._pending_mark = None
        payload = await super().serialize(frame)
        if isinstance(frame, AudioRawFrame) and payload:
            secs = len(frame.audio) / (2 * frame.num_channels * frame.sample_rate)
            self._pending_mark = self.ledger.audio_sent(secs)
            self.stats.media_out += 1
        return payload

    def flush_mark(self) -> str | None:
        """A mark message for audio not yet covered by one (end of an utterance)."""
        name = self.ledger.flush()
        return mark_message(self._stream_sid, name) if name else None

    def take_mark(self) -> str | None:
        """The mark message that must follow the media message just serialized."""
        name, self._pending_mark = self._pending_mark, None
        return mark_message(self._stream_sid, name) if name else None

    # -- inbound ---------------------------------------------------------------
    async def deserialize(self, data: str | bytes) -> Frame | None:
        message = self._parse(data)
        if message is None:
            return None
        event = message.get("event")
        seq = _seq(message.get("sequenceNumber"))
        if event == "media":
            return await self._on_media(message, seq)
        if seq is not None:
            self._fill(seq, None)
        if event == "mark":
            name = _field(message, "mark", "name")
            if isinstance(name, str):
                self.ledger.echo(name)
            else:
                self.stats.malformed += 1
            return None
        if event == "dtmf":
            digit = _field(message, "dtmf", "digit")
            try:
                if not isinstance(digit, str):
                    raise ValueError(digit)
                frame = InputDTMFFrame(KeypadEntry(digit))
            except ValueError:
                self.stats.unknown_events += 1
                return None
            self.stats.dtmf += 1
            return frame
        if event == "stop":
            self.stopped = True
            self.hung_up.set()
            return None
        if event in ("connected", "start"):
            return None  # duplicates of what the router already consumed
        self.stats.unknown_events += 1
        return None

    def _parse(self, data: str | bytes) -> dict[str, Any] | None:
        try:
            message = json.loads(data)
        except (ValueError, RecursionError):  # not JSON (or not UTF-8), or nested too deep
            self.stats.malformed += 1
            return None
        if not isinstance(message, dict):
            self.stats.malformed += 1
            return None
        return message

    async def _on_media(self, message: dict[str, Any], seq: int | None) -> Frame | None:
        media = message.get("media")
        if not isinstance(media, dict) or media.get("track", "inbound") != "inbound":
            self.stats.unknown_events += 1
            return None
        try:
            payload = base64.b64decode(media.get("payload") or "", validate=True)
        except (binascii.Error, ValueError, TypeError):
            self.stats.malformed += 1
            return None
        if not payload:
            return None
        self.stats.media_in += 1
        if seq is None:
            self._ready += payload  # no ordering info: take it as it comes
        else:
            self._fill(seq, payload)
        if len(self._ready) < self._batch_bytes:
            return None
        ulaw, self._ready = bytes(self._ready), bytearray()
        return await self._to_frame(ulaw)

    def _fill(self, seq: int, payload: bytes | None) -> None:
        """Put a message in its slot and release everything now in order."""
        if self._expected is None:
            self._expected = seq
        if seq < self._expected:
            if payload is not None:
                self.stats.late_dropped += 1  # its slot was already given up
            return
        if seq != self._expected and payload is not None:
            self.stats.reordered += 1
        self._pending[seq] = payload
        self._drain()
        if len(self._pending) > self._window:
            # A message is lost, not late: skip the hole instead of waiting forever.
            self._expected = min(self._pending)
            self.stats.gaps_skipped += 1
            self._drain()

    def _drain(self) -> None:
        assert self._expected is not None
        while self._expected in self._pending:
            payload = self._pending.pop(self._expected)
            if payload:
                self._ready += payload
            self._expected += 1

    async def _to_frame(self, ulaw: bytes) -> InputAudioRawFrame | None:
        from pipecat.audio.utils import ulaw_to_pcm

        pcm = await ulaw_to_pcm(ulaw, TWILIO_RATE, self._sample_rate, self._input_resampler)
        if not pcm:
            return None
        return InputAudioRawFrame(audio=pcm, num_channels=1, sample_rate=self._sample_rate)


_MAX_SEQ = 2**53  # Twilio counts up from 1; beyond this a number is no sequence at all


def _seq(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    try:
        seq = int(value)
    except (TypeError, ValueError, OverflowError):  # (int("inf"), int(float("inf")))
        return None
    return seq if 0 < seq < _MAX_SEQ else None


def _field(message: dict[str, Any], section: str, name: str) -> Any:
    """``message[section][name]``, or None when the section is not an object."""
    body = message.get(section)
    return body.get(name) if isinstance(body, dict) else None

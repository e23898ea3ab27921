"""Keep only the words the caller actually heard.

How pipecat 1.14 records what the bot said: the TTS service queues each sentence's
``TTSTextFrame`` *behind* that sentence's audio; the output transport releases it
downstream once the audio before it has been written to the socket; the
``LLMAssistantAggregator`` (placed after the transport) appends those texts, and on an
``InterruptionFrame`` it commits what it has as the assistant message and reports the
turn as interrupted. "Written to the socket" is not "played to the caller", though:
Twilio buffers, and a sentence is all-or-nothing.

So we hook on both sides of ``transport.output()``:

* ``tracker.observer`` (between TTS and the output transport) sees each TTS context's
  audio as it is generated and, when a ``TTSTextFrame`` follows, records the span of
  that context's audio it covers: ``[start, end)`` seconds. It does not change frames.
* ``tracker.gate`` (right after the output transport, before the assistant
  aggregator) holds each ``TTSTextFrame`` -- and the control frames behind it -- until
  the :class:`~.marks.MarkLedger` says that span was played (Twilio echoed the mark of
  the last chunk) or, as a fallback, a short time after it was written.
* On barge-in the gate replaces the unplayed text with what was played: whole
  sentences that were heard, the first words of the sentence that was cut (in
  proportion to the seconds of it that played), then an optional marker such as
  ``" [interrupted]"`` so the LLM knows it was cut off. Everything else is dropped,
  the turn-end frame is withheld so the aggregator commits the message as
  *interrupted*, and late copies of dropped frames are discarded.

TTS services with word timestamps (pts) work too; each word is a span of its own.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from pipecat.frames.frames import (
    CancelFrame,
    EndFrame,
    Frame,
    InterruptionFrame,
    LLMAssistantPushAggregationFrame,
    LLMFullResponseEndFrame,
    OutputAudioRawFrame,
    StartFrame,
    SystemFrame,
    TTSAudioRawFrame,
    TTSStartedFrame,
    TTSStoppedFrame,
    TTSTextFrame,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

from .marks import MarkLedger

log = logging.getLogger("voxline.twilio")

# Mark granularity is one output chunk (20 ms) plus end-of-turn padding.
_PLAYED_SLACK_SECS = 0.05


@dataclass
class HeardLine:
    """One assistant utterance as the caller heard it."""

    text: str
    interrupted: bool
    generated: str  # everything the TTS produced for it, for diagnostics
    at: float = field(default_factory=time.time)


@dataclass
class _Span:
    frame_id: int
    text: str
    context_id: str | None
    start: float
    end: float
    frame: TTSTextFrame | None = None
    arrived_at: float = 0.0


class HeardTextTracker:
    """Two processors sharing one script; see the module docstring for placement."""

    def __init__(
        self,
        ledger: MarkLedger,
        *,
        call_id: str = "-",
        interrupted_marker: str | None = " [interrupted]",
        max_hold_secs: float = 1.5,
        max_pending: int = 512,
        on_heard: Callable[[HeardLine], Awaitable[None]] | None = None,
    ) -> None:
        self.ledger = ledger
        self.call_id = call_id
        self.interrupted_marker = interrupted_marker
        self.max_hold_secs = max_hold_secs
        self.max_pending = max_pending
        self.on_heard = on_heard
        self.lines: deque[HeardLine] = deque(maxlen=256)
        self.pending: OrderedDict[int, _Span] = OrderedDict()  # spans not yet released
        self.retired: deque[int] = deque(maxlen=1024)  # ids of frames we dropped
        self.heard_count = 0  # spans released as heard; tools wait on this
        self.heard_log: deque[tuple[int, str]] = deque(maxlen=64)
        self.observer = _ScriptObserver(self, name=f"HeardObserver#{call_id}")
        self.gate = _HeardGate(self, name=f"HeardGate#{call_id}")

    def add_span(self, span: _Span) -> None:
        self.pending[span.frame_id] = span
        while len(self.pending) > self.max_pending:
            self.pending.popitem(last=False)  # never grow without bound

    def played(self, span: _Span) -> float:
        """Seconds of this span that have been played."""
        return min(span.end - span.start,
                   max(0.0, self.ledger.played_in_context(span.context_id) - span.start))

    def fully_played(self, span: _Span) -> bool:
        return self.played(span) >= (span.end - span.start) - _PLAYED_SLACK_SECS

    def note_heard(self, text: str) -> None:
        self.heard_count += 1
        self.heard_log.append((self.heard_count, text))

    def _heard_since(self, since: int) -> str:
        return " ".join(text for n, text in self.heard_log if n > since)

    async def wait_heard(self, text: str, *, since: int, timeout: float) -> bool:
        """Wait until ``text`` (its last word) was heard after ``since`` and all audio played."""
        words = text.split()
        last = words[-1].strip(".,!?;:").lower() if words else ""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not (last in self._heard_since(since).lower() and self.ledger.idle):
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            await self.ledger.wait_changed(min(remaining, 0.05))
        return True


class _ScriptObserver(FrameProcessor):
    """Between TTS and the output transport: records each text's audio span."""

    def __init__(self, tracker: HeardTextTracker, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self._tracker = tracker
        self._generated: dict[str, float] = {}
        self._text_end: dict[str, float] = {}

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if direction == FrameDirection.DOWNSTREAM:
            if isinstance(frame, InterruptionFrame):
                self._tracker.ledger.bump_epoch()
            elif isinstance(frame, TTSStartedFrame) and frame.context_id:
                self._generated.setdefault(frame.context_id, 0.0)
                self._text_end.setdefault(frame.context_id, 0.0)
                if len(self._generated) > 64:  # contexts are per turn; keep recent ones
                    oldest = next(iter(self._generated))
                    self._generated.pop(oldest)
                    self._text_end.pop(oldest, None)
            elif isinstance(frame, TTSAudioRawFrame) and frame.context_id:
                secs = len(frame.audio) / (2 * frame.num_channels * frame.sample_rate)
                self._generated[frame.context_id] = self._generated.get(frame.context_id, 0.0) + secs
            elif isinstance(frame, TTSTextFrame) and frame.append_to_context and frame.text:
                ctx = frame.context_id or ""
                end = self._generated.get(ctx, 0.0)
                start = min(self._text_end.get(ctx, 0.0), end)
                self._text_end[ctx] = end
                self._tracker.add_span(_Span(frame.id, frame.text, frame.context_id, start, end))
        await self.push_frame(frame, direction)


class _HeardGate(FrameProcessor):
    """After the output transport: releases text only once it was played."""

    def __init__(self, tracker: HeardTextTracker, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self._tracker = tracker
        self._held: deque[_Span | Frame] = deque()
        self._lock = asyncio.Lock()
        self._pump: asyncio.Task[None] | None = None
        self._turn_heard: list[str] = []
        self._turn_generated: list[str] = []

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        t = self._tracker
        if isinstance(frame, StartFrame):
            await self.push_frame(frame, direction)
            self._pump = self.create_task(self._pump_loop(), name=f"heard-pump-{t.call_id}")
            return
        if isinstance(frame, (EndFrame, CancelFrame)):
            async with self._lock:
                if isinstance(frame, EndFrame):
                    await self._release(force=True)
                await self._finish_line(interrupted=isinstance(frame, CancelFrame))
                self._held.clear()
            if self._pump:
                await self.cancel_task(self._pump)
                self._pump = None
            await self.push_frame(frame, direction)
            return
        if isinstance(frame, InterruptionFrame):
            async with self._lock:
                await self._interrupt()
            await self.push_frame(frame, direction)
            return
        if direction == FrameDirection.DOWNSTREAM and isinstance(frame, OutputAudioRawFrame):
            return  # played already; nothing after us (the assistant aggregator) needs it
        if direction == FrameDirection.UPSTREAM or isinstance(frame, SystemFrame):
            await self.push_frame(frame, direction)
            return
        async with self._lock:
            if isinstance(frame, TTSTextFrame) and frame.id in t.retired:
                return  # a late copy of text we already replaced at barge-in
            span = t.pending.get(frame.id) if isinstance(frame, TTSTextFrame) else None
            if span is not None:
                span.frame = frame  # type: ignore[assignment]
                span.arrived_at = time.monotonic()
                self._held.append(span)
            elif self._held:
                self._held.append(frame)
            else:
                await self._forward(frame)
                return
            await self._release(force=False)

    async def _pump_loop(self) -> None:
        ledger = self._tracker.ledger
        while True:
            await ledger.wait_changed(0.1 if self._held else 1.0)
            if self._held:
                async with self._lock:
                    await self._release(force=False)

    async def _release(self, *, force: bool) -> None:
        t = self._tracker
        now = time.monotonic()
        while self._held:
            head = self._held[0]
            if isinstance(head, _Span):
                ready = (
                    force
                    or t.fully_played(head)
                    or t.ledger.idle  # all written audio, this span's included, was played
                    or now - head.arrived_at > t.max_hold_secs
                )
                if not ready:
                    return
                self._held.popleft()
                t.pending.pop(head.frame_id, None)
                t.note_heard(head.text)
                self._turn_heard.append(head.text)
                self._turn_generated.append(head.text)
                assert head.frame is not None
                await self.push_frame(head.frame)
            else:
                self._held.popleft()
                await self._forward(head)

    async def _forward(self, frame: Frame) -> None:
        await self.push_frame(frame)
        if isinstance(frame, (LLMFullResponseEndFrame, LLMAssistantPushAggregationFrame, TTSStoppedFrame)):
            await self._finish_line(interrupted=False)

    async def _interrupt(self) -> None:
        """Replace everything unplayed with what was heard; see module docstring."""
        t = self._tracker
        cut = False
        arrived = [item for item in self._held]
        self._held.clear()
        not_arrived = [s for s in t.pending.values() if s.frame is None]
        for item in [*arrived, *not_arrived]:
            if not isinstance(item, _Span):
                if isinstance(item, (LLMFullResponseEndFrame, TTSStoppedFrame)) and cut:
                    continue  # let the aggregator close the turn as interrupted
                await self.push_frame(item)
                continue
            t.retired.append(item.frame_id)
            self._turn_generated.append(item.text)
            if cut:
                continue
            played = t.played(item)
            if t.fully_played(item):
                text = item.text
            else:
                cut = True
                words = item.text.split()
                duration = item.end - item.start
                keep = int(len(words) * played / duration) if duration > 0 else 0
                text = " ".join(words[:keep])
            if text:
                t.note_heard(text)
                self._turn_heard.append(text)
                await self.push_frame(_text_frame(text, item.context_id))
        t.pending.clear()
        if cut and t.interrupted_marker:
            await self.push_frame(_text_frame(t.interrupted_marker, None, spaces=True))
        await self._finish_line(interrupted=cut)

    async def _finish_line(self, *, interrupted: bool) -> None:
        if not self._turn_heard and not interrupted:
            self._turn_generated.clear()
            return
        line = HeardLine(
            text=" ".join(self._turn_heard).strip(),
            interrupted=interrupted,
            generated=" ".join(self._turn_generated).strip(),
        )
        self._turn_heard, self._turn_generated = [], []
        if not line.text and not interrupted:
            return
        t = self._tracker
        t.lines.append(line)
        if interrupted:
            log.info("%s barge-in: %d of %d chars heard", t.call_id, len(line.text), len(line.generated))
        if t.on_heard:
            await t.on_heard(line)


def _text_frame(text: str, context_id: str | None, *, spaces: bool = False) -> TTSTextFrame:
    frame = TTSTextFrame(text, text_type="sentence", context_id=context_id)
    frame.includes_inter_frame_spaces = spaces
    return frame

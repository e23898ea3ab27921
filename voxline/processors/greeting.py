"""Cached greeting audio: synthesize an agent's greeting once, replay it on every call.

The greeting is the same words on every call, and it is what the caller waits for
after the line connects, so synthesizing it per call wastes the TTS's time to first
audio exactly where it is most noticed. Two processors share one cache entry:

* ``intercept`` (``Extensions.before_tts``) sees the session's greeting
  ``TTSSpeakFrame``. If the cache has it, the frame never reaches the TTS; a replay
  marker goes downstream instead (the TTS passes it through, in order). If not, the
  frame goes on and ``replay`` is told to record what the TTS makes of it.
* ``replay`` (``Extensions.before_output``, ahead of the heard-text observer) turns
  the marker into the frames the TTS would have produced -- started, audio, text,
  stopped, push-aggregation -- under a fresh context id, or records the first
  uninterrupted synthesis into the cache.

Only the first greeting frame of a call is handled; reprompts and goodbyes go to the
TTS as usual. The cache is per process, keyed by agent and text, and bounded.
"""

from __future__ import annotations

import uuid
from collections import OrderedDict
from dataclasses import dataclass, field

from pipecat.frames.frames import (
    DataFrame,
    Frame,
    InputAudioRawFrame,
    InterruptionFrame,
    LLMAssistantPushAggregationFrame,
    TTSAudioRawFrame,
    TTSSpeakFrame,
    TTSStartedFrame,
    TTSStoppedFrame,
    TTSTextFrame,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor


@dataclass
class CachedSpeech:
    sample_rate: int
    num_channels: int
    chunks: list[bytes] = field(default_factory=list)
    texts: list[tuple[str, object, bool]] = field(default_factory=list)  # text, type, spaces


@dataclass
class _ReplayMarker(DataFrame):
    speech: CachedSpeech | None = None


class GreetingCache:
    """Process-wide cache of synthesized greetings, keyed by (agent, text)."""

    def __init__(self, max_entries: int = 256, max_secs: float = 30.0) -> None:
        self._items: OrderedDict[tuple[str, str], CachedSpeech] = OrderedDict()
        self._max_entries = max_entries
        self._max_secs = max_secs
        self.hits = 0
        self.misses = 0

    def get(self, agent: str, text: str) -> CachedSpeech | None:
        return self._items.get((agent, text.strip()))

    def put(self, agent: str, text: str, speech: CachedSpeech) -> None:
        audio = sum(len(c) for c in speech.chunks)
        if audio == 0 or audio > self._max_secs * speech.sample_rate * 2 * speech.num_channels:
            return
        self._items[(agent, text.strip())] = speech
        while len(self._items) > self._max_entries:
            self._items.popitem(last=False)

    def processors(self, agent: str, greeting: str | None, *,
                   drop_input_audio: bool = False) -> tuple[FrameProcessor, FrameProcessor]:
        """(before_tts, before_output) processors for one call.

        ``drop_input_audio``: the intercept also stops caller audio, which nothing after
        the user aggregator needs unless a recorder follows the output -- every frame
        dropped here saves a frame's trip through the rest of the pipeline.
        """
        replay = _Replay(self, agent)
        return _Intercept(self, agent, greeting, replay, drop_input_audio), replay


class _Intercept(FrameProcessor):
    def __init__(self, cache: GreetingCache, agent: str, greeting: str | None,
                 replay: _Replay, drop_input_audio: bool = False) -> None:
        super().__init__(name=f"GreetingIntercept#{agent}")
        self._cache, self._agent, self._replay = cache, agent, replay
        self._greeting = greeting.strip() if greeting else None
        self._drop_input_audio = drop_input_audio

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if self._drop_input_audio and isinstance(frame, InputAudioRawFrame):
            return
        if (
            isinstance(frame, TTSSpeakFrame)
            and self._greeting is not None
            and frame.text.strip() == self._greeting
        ):
            self._greeting = None  # the first greeting of the call only
            cached = self._cache.get(self._agent, frame.text)
            if cached is not None:
                self._cache.hits += 1
                await self.push_frame(_ReplayMarker(speech=cached), direction)
                return
            self._cache.misses += 1
            self._replay.capture(frame.text)
        await self.push_frame(frame, direction)


class _Replay(FrameProcessor):
    def __init__(self, cache: GreetingCache, agent: str) -> None:
        super().__init__(name=f"GreetingReplay#{agent}")
        self._cache, self._agent = cache, agent
        self._capture_text: str | None = None
        self._capture_ctx: str | None = None
        self._captured: CachedSpeech | None = None

    def capture(self, text: str) -> None:
        self._capture_text = text

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, _ReplayMarker):
            if frame.speech is not None:
                await self._play(frame.speech)
            return
        if self._capture_text is not None and direction == FrameDirection.DOWNSTREAM:
            self._record(frame)
        await self.push_frame(frame, direction)

    def _record(self, frame: Frame) -> None:
        if isinstance(frame, InterruptionFrame):
            self._capture_text = self._capture_ctx = self._captured = None  # partial: useless
        elif isinstance(frame, TTSStartedFrame) and self._capture_ctx is None:
            self._capture_ctx = frame.context_id
        elif self._capture_ctx is None or getattr(frame, "context_id", None) != self._capture_ctx:
            return
        elif isinstance(frame, TTSAudioRawFrame):
            if self._captured is None:
                self._captured = CachedSpeech(frame.sample_rate, frame.num_channels)
            if (frame.sample_rate, frame.num_channels) == (
                self._captured.sample_rate, self._captured.num_channels
            ):
                self._captured.chunks.append(frame.audio)
        elif isinstance(frame, TTSTextFrame) and self._captured is not None:
            self._captured.texts.append(
                (frame.text, frame.text_type, frame.includes_inter_frame_spaces))
        elif isinstance(frame, TTSStoppedFrame):
            if self._captured is not None and self._capture_text is not None:
                self._cache.put(self._agent, self._capture_text, self._captured)
            self._capture_text = self._capture_ctx = self._captured = None

    async def _play(self, speech: CachedSpeech) -> None:
        ctx = f"greeting-{uuid.uuid4().hex}"
        await self.push_frame(TTSStartedFrame(context_id=ctx))
        for chunk in speech.chunks:
            await self.push_frame(TTSAudioRawFrame(chunk, speech.sample_rate, speech.num_channels,
                                                   context_id=ctx))
        for text, text_type, spaces in speech.texts:
            frame = TTSTextFrame(text, text_type=text_type, context_id=ctx)  # type: ignore[arg-type]
            frame.includes_inter_frame_spaces = spaces
            await self.push_frame(frame)
        await self.push_frame(TTSStoppedFrame(context_id=ctx))
        await self.push_frame(LLMAssistantPushAggregationFrame())


async def prewarm(cache: GreetingCache, agent: str, greeting: str, tts: FrameProcessor, *,
                  sample_rate: int = 16000, timeout_secs: float = 60.0) -> bool:
    """Synthesize ``agent``'s greeting into ``cache`` before any call (at startup): the
    first caller of a worker hears it at once instead of waiting for the TTS (0.7–0.9 s
    for Piper on 2 cores while llama.cpp reads a prompt). Output transports resample, so
    one rate serves phone and web calls. True when the cache holds it."""
    import asyncio

    from pipecat.frames.frames import EndFrame
    from pipecat.pipeline.pipeline import Pipeline
    from pipecat.pipeline.worker import PipelineParams, PipelineWorker
    from pipecat.workers.runner import WorkerRunner

    intercept, replay = cache.processors(agent, greeting)
    worker = PipelineWorker(Pipeline([intercept, tts, replay]),
                            params=PipelineParams(audio_out_sample_rate=sample_rate),
                            idle_timeout_secs=None, enable_rtvi=False)
    await worker.queue_frames([TTSSpeakFrame(greeting), EndFrame()])
    runner = WorkerRunner(handle_sigint=False, check_dangling_tasks=False)
    await runner.add_workers(worker)
    try:
        await asyncio.wait_for(runner.run(), timeout_secs)
    except TimeoutError:
        await worker.cancel()
    return cache.get(agent, greeting) is not None

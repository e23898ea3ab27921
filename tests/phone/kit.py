"""Test kit: real speech, fake STT/LLM/TTS on pipecat's real base classes, and an
``on_stream`` that runs a small real pipeline (Silero VAD, context aggregators)."""

from __future__ import annotations

import asyncio
import functools
import subprocess
import tempfile
import wave
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soxr
from fastapi import WebSocket
from pipecat.audio.vad.silero import SileroVADAnalyzer
from pipecat.audio.vad.vad_analyzer import VADParams
from pipecat.frames.frames import (
    Frame,
    FunctionCallFromLLM,
    LLMContextFrame,
    LLMFullResponseEndFrame,
    LLMFullResponseStartFrame,
    LLMTextFrame,
    TranscriptionFrame,
    TTSAudioRawFrame,
    TTSSpeakFrame,
)
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineParams, PipelineWorker
from pipecat.processors.aggregators.dtmf_aggregator import DTMFAggregator
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.processors.aggregators.llm_response_universal import (
    LLMContextAggregatorPair,
    LLMUserAggregatorParams,
)
from pipecat.processors.audio.vad_processor import VADProcessor
from pipecat.processors.frame_processor import FrameDirection
from pipecat.services.llm_service import LLMService
from pipecat.services.stt_service import SegmentedSTTService
from pipecat.services.tts_service import TTSService
from pipecat.turns.user_start.transcription_user_turn_start_strategy import (
    TranscriptionUserTurnStartStrategy,
)
from pipecat.turns.user_start.vad_user_turn_start_strategy import VADUserTurnStartStrategy
from pipecat.turns.user_stop.speech_timeout_user_turn_stop_strategy import (
    SpeechTimeoutUserTurnStopStrategy,
)
from pipecat.turns.user_turn_strategies import UserTurnStrategies
from pipecat.utils.time import time_now_iso8601
from pipecat.workers.runner import WorkerRunner

from voxline.transports.twilio import TwilioCall

RATE = 8000


@functools.lru_cache(maxsize=64)
def speech(text: str, *, speed: int = 175) -> bytes:
    """Real synthesized speech (espeak-ng), 16-bit mono 8 kHz PCM."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "s.wav"
        subprocess.run(["espeak-ng", "-s", str(speed), "-w", str(path), text], check=True)
        with wave.open(str(path)) as w:
            rate, raw = w.getframerate(), w.readframes(w.getnframes())
    samples = np.frombuffer(raw, dtype=np.int16).astype(np.float32)
    out = soxr.resample(samples, rate, RATE)
    return np.clip(out, -32768, 32767).astype(np.int16).tobytes()


def silence(secs: float) -> bytes:
    return b"\x00\x00" * int(RATE * secs)


class ScriptedSTT(SegmentedSTTService):
    """Returns the next scripted transcript for each VAD speech segment."""

    def __init__(self, transcripts: list[str], latency: float = 0.0) -> None:
        super().__init__(sample_rate=RATE, trailing_silence_secs=0)
        self._script = list(transcripts)
        self._latency = latency

    async def run_stt(self, audio: bytes) -> AsyncGenerator[Frame | None, None]:
        if self._latency:
            await asyncio.sleep(self._latency)
        text = self._script.pop(0) if self._script else "..."
        yield TranscriptionFrame(text, "caller", time_now_iso8601())


Reply = str | tuple[str, dict]  # text to say, or (tool name, arguments)


class ScriptedLLM(LLMService):
    """Answers each context with a reply chosen from the last user message."""

    def __init__(self, reply: Callable[[str], Reply], latency: float = 0.0) -> None:
        super().__init__()
        self._reply = reply
        self._latency = latency
        self.calls = 0

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if not isinstance(frame, LLMContextFrame):
            await self.push_frame(frame, direction)
            return
        self.calls += 1
        messages = frame.context.get_messages()
        last_user = next((m.get("content", "") for m in reversed(messages)
                          if m.get("role") == "user"), "")
        await self.push_frame(LLMFullResponseStartFrame())
        if self._latency:
            await asyncio.sleep(self._latency)
        reply = self._reply(str(last_user))
        if isinstance(reply, tuple):
            name, args = reply
            await self.run_function_calls([FunctionCallFromLLM(
                function_name=name, tool_call_id=f"call-{self.calls}", arguments=args,
                context=frame.context)])
        else:
            for sentence in reply.split("|"):
                await self.push_frame(LLMTextFrame(sentence.strip() + " "))
        await self.push_frame(LLMFullResponseEndFrame())


class SpeechTTS(TTSService):
    """Synthesizes with espeak-ng (real speech the test can check), fixed extra latency."""

    def __init__(self, latency: float = 0.0, cached: dict[str, bytes] | None = None) -> None:
        super().__init__(push_start_frame=True, push_stop_frames=True, sample_rate=RATE)
        self._latency = latency
        self._cached = cached or {}

    async def run_tts(self, text: str, context_id: str) -> AsyncGenerator[Frame | None, None]:
        if self._latency:
            await asyncio.sleep(self._latency)
        pcm = self._cached.get(text.strip())
        if pcm is None:
            pcm = await asyncio.to_thread(speech, text.strip())
        step = RATE * 2 // 10  # 100 ms frames, like a streaming TTS
        for i in range(0, len(pcm), step):
            yield TTSAudioRawFrame(pcm[i:i + step], RATE, 1, context_id=context_id)


@dataclass
class AgentScript:
    greeting: str = "Hello, thanks for calling."
    transcripts: list[str] = field(default_factory=list)
    reply: Callable[[str], Reply] = lambda text: "I can help with that."
    stt_latency: float = 0.0
    llm_latency: float = 0.0
    tts_latency: float = 0.0
    tts_cache: dict[str, bytes] = field(default_factory=dict)


def make_on_stream(script: AgentScript, results: dict[str, dict] | None = None):
    """An ``on_stream`` running a small real pipecat pipeline for each call."""

    async def on_stream(websocket: WebSocket, call: TwilioCall) -> None:
        stt = ScriptedSTT(list(script.transcripts), script.stt_latency)
        llm = ScriptedLLM(script.reply, script.llm_latency)
        call.control.register(llm)
        tts = SpeechTTS(script.tts_latency, script.tts_cache)
        context = LLMContext(messages=[{"role": "system", "content": "test agent"}])
        pair = LLMContextAggregatorPair(
            context,
            user_params=LLMUserAggregatorParams(
                user_turn_strategies=UserTurnStrategies(
                    start=[VADUserTurnStartStrategy(), TranscriptionUserTurnStartStrategy()],
                    stop=[SpeechTimeoutUserTurnStopStrategy(user_speech_timeout=0.2)],
                ),
            ),
        )
        vad = VADProcessor(vad_analyzer=SileroVADAnalyzer(
            sample_rate=RATE, params=VADParams(start_secs=0.15, stop_secs=0.3)))
        pipeline = Pipeline([
            call.transport.input(), vad, stt, DTMFAggregator(timeout=0.3), pair.user(), llm, tts,
            call.heard.observer, call.transport.output(), call.heard.gate, pair.assistant(),
        ])
        worker = PipelineWorker(
            pipeline,
            params=PipelineParams(audio_in_sample_rate=RATE, audio_out_sample_rate=RATE),
            observers=[call.transcript_observer],
            idle_timeout_secs=None,
            enable_rtvi=False,
        )

        @call.transport.event_handler("on_client_connected")
        async def _greet(transport, ws) -> None:  # noqa: ANN001
            await worker.queue_frames([TTSSpeakFrame(script.greeting)])

        @call.transport.event_handler("on_client_disconnected")
        async def _gone(transport, ws) -> None:  # noqa: ANN001
            await worker.cancel()

        runner = WorkerRunner(handle_sigint=False)
        await runner.add_workers(worker)
        await runner.run()
        if results is not None:
            results[call.call_id] = {"context": context.get_messages(), "call": call}

    return on_stream

"""Test kit: real speech, fake STT/LLM/TTS on pipecat's real base classes, and an
agents folder for ``voxline.server.create_app`` (the real CallSession path)."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import subprocess
import tempfile
import wave
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soxr
import yaml
from pipecat.frames.frames import (
    Frame,
    FunctionCallFromLLM,
    LLMContextFrame,
    LLMFullResponseEndFrame,
    LLMFullResponseStartFrame,
    LLMTextFrame,
    TranscriptionFrame,
    TTSAudioRawFrame,
)
from pipecat.processors.frame_processor import FrameDirection
from pipecat.services.llm_service import LLMService
from pipecat.services.settings import LLMSettings, STTSettings, TTSSettings
from pipecat.services.stt_service import SegmentedSTTService
from pipecat.services.tts_service import TTSService
from pipecat.utils.time import time_now_iso8601

from voxline.pipelines.builder import Services
from voxline.spec import AgentSpec

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


def unset(settings: type) -> object:
    """Store-mode settings with every field None: a fake supports none of them (and
    pipecat does not log an error about uninitialized fields at start)."""
    return settings(**{f.name: None for f in dataclasses.fields(settings) if f.name != "extra"})


class ScriptedSTT(SegmentedSTTService):
    """Returns the next scripted transcript for each VAD speech segment."""

    def __init__(self, transcripts: list[str], latency: float = 0.0) -> None:
        super().__init__(sample_rate=RATE, trailing_silence_secs=0, settings=unset(STTSettings))
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
        super().__init__(settings=unset(LLMSettings))
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
        super().__init__(push_start_frame=True, push_stop_frames=True, sample_rate=RATE,
                         settings=unset(TTSSettings))
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
    tools: list[dict] = field(default_factory=lambda: [
        {"name": "end_call", "handler": "builtin:end_call"},
        {"name": "transfer_call", "handler": "builtin:transfer_call"},
    ])
    phone: dict | None = None  # the spec's ``phone:`` block (voicemail, recording)
    limits: dict | None = None  # the spec's ``limits:`` block (max_concurrent_calls)


def agent_yaml(script: AgentScript, name: str = "restaurant") -> dict:
    """The spec of the test agent: deterministic turn-taking, tools wired as built-ins."""
    spec = {
        "name": name,
        "greeting": script.greeting,
        "prompt": "You are a test agent.",
        "turn": {"strategy": "silence", "stop_secs": 0.2},
        "vad": {"start_secs": 0.15, "stop_secs": 0.3},
        "idle": {"reprompt_after_secs": 60, "max_reprompts": 0},
        "tools": script.tools,
    }
    if script.phone is not None:
        spec["phone"] = script.phone
    if script.limits is not None:
        spec["limits"] = script.limits
    return spec


def write_agents(root: Path, script: AgentScript, routes: dict) -> Path:
    """An agents folder: ``restaurant/agent.yaml`` and ``routes.yaml``."""
    (root / "restaurant").mkdir(parents=True, exist_ok=True)
    (root / "restaurant" / "agent.yaml").write_text(yaml.safe_dump(agent_yaml(script)))
    (root / "routes.yaml").write_text(yaml.safe_dump(routes))
    return root


def fake_services(script: AgentScript) -> Callable[[AgentSpec, int], Services]:
    """A ``services`` factory for ``create_app``: fresh fake STT/LLM/TTS per call."""

    def make(spec: AgentSpec, sample_rate: int = RATE) -> Services:
        return Services(
            stt=ScriptedSTT(list(script.transcripts), script.stt_latency),
            llm=ScriptedLLM(script.reply, script.llm_latency),
            tts=SpeechTTS(script.tts_latency, script.tts_cache),
        )

    return make

"""While an answer's first audio is synthesized, the local LLM waits between tokens: on
two cores the two would otherwise share them and the caller's silence would last as
long as both. Real Piper voice, real llama.cpp model."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
from pipecat.frames.frames import TTSAudioRawFrame
from pipecat.processors.aggregators.llm_context import LLMContext

from voxline.integrations.providers.local import manifest, voice_first
from voxline.integrations.providers.local.voice_first import VOICE_FIRST, VoiceFirst
from voxline.integrations.providers.registry import build_llm
from voxline.spec import parse_spec


def test_a_wait_returns_when_the_first_audio_exists_or_at_its_bound():
    gate = VoiceFirst()
    gate.wait(timeout=5)  # nobody speaking: no wait
    assert gate.waits == 0
    hold = gate.begin()
    done = threading.Event()
    waiter = threading.Thread(target=lambda: (gate.wait(timeout=30), done.set()))
    waiter.start()
    assert not done.wait(0.2)  # held back while the audio is made
    gate.end(hold)
    assert done.wait(5) and gate.waits == 1 and not gate.speaking
    hold = gate.begin()  # a TTS that never ends its first audio stalls the LLM only this long
    started = time.monotonic()
    gate.wait(timeout=0.3)
    assert 0.25 <= time.monotonic() - started < 5
    gate.end(hold)


def test_a_hold_nobody_ends_expires(monkeypatch):
    """An abandoned TTS stream (its generator suspended until collected) must not slow
    every later answer of the process."""
    monkeypatch.setattr(voice_first, "MAX_WAIT_SECS", 0.3)
    gate = VoiceFirst()
    gate.begin()  # never ended
    assert gate.speaking
    started = time.monotonic()
    gate.wait(timeout=30)
    assert 0.25 <= time.monotonic() - started < 5
    assert not gate.speaking
    started = time.monotonic()
    gate.wait(timeout=30)  # expired: the next token does not wait at all
    assert time.monotonic() - started < 0.1 and gate.waits == 1
    assert VoiceFirst(enabled=False).begin() is None


class ObservedVoice:
    """The real Piper voice; notes, as each chunk is synthesized, whether the LLM is held."""

    def __init__(self, voice) -> None:
        self.voice, self.held = voice, []

    @property
    def config(self):
        return self.voice.config

    def synthesize(self, text, *args, **kwargs):
        for chunk in self.voice.synthesize(text, *args, **kwargs):
            self.held.append(VOICE_FIRST.speaking)
            yield chunk


@pytest.mark.models
async def test_piper_holds_the_llm_for_an_answers_first_audio_only():
    pytest.importorskip("piper")
    from voxline.integrations.providers.local.piper import SharedPiperTTSService

    tts = SharedPiperTTSService(voice_path=next(manifest.resolve("piper-en-us").glob("*.onnx")))
    tts._sample_rate = 16000  # as StartFrame would set it in a pipeline
    voice = tts._voice = ObservedVoice(tts._voice)

    async def speak(text: str, context: str) -> list[bool]:
        voice.held.clear()
        frames = [f async for f in tts.run_tts(text, context)]
        assert any(isinstance(f, TTSAudioRawFrame) for f in frames)
        return list(voice.held)

    assert await speak("Sure, I can help with that,", "answer-1") == [True]
    assert await speak("What time would you like to come?", "answer-1") == [False]  # same answer
    assert await speak("Of course.", "answer-2") == [True]  # the next answer
    assert not VOICE_FIRST.speaking


@pytest.mark.models
async def test_the_local_llm_waits_while_first_audio_is_made(monkeypatch):
    monkeypatch.setattr(voice_first, "MAX_WAIT_SECS", 60.0)  # the bound is tested above
    spec = parse_spec({"name": "waits", "prompt": "Answer in two sentences.",
                       "llm": {"temperature": 0, "max_tokens": 30}})
    llm = build_llm(spec.llm, max_tool_calls_per_turn=1)
    context = LLMContext(messages=[{"role": "system", "content": spec.system_prompt},
                                   {"role": "user", "content": "Tell me about Italian food."}])
    await llm.warm_up(context)
    pieces: list[str] = []

    async def listen() -> None:
        async for chunk in await llm.get_chat_completions(context):
            pieces.extend(c.delta.content or "" for c in chunk.choices if c.delta.content)

    waits = VOICE_FIRST.waits
    hold = VOICE_FIRST.begin()
    answer = asyncio.create_task(listen())
    try:
        for _ in range(600):  # the first token comes, then the model waits
            if pieces and VOICE_FIRST.waits > waits:
                break
            await asyncio.sleep(0.1)
        count = len(pieces)
        assert count >= 1 and VOICE_FIRST.waits > waits
        await asyncio.sleep(1.0)
        assert len(pieces) == count  # nothing written while the audio is made
    finally:
        VOICE_FIRST.end(hold)
    await asyncio.wait_for(answer, 120)
    assert len(pieces) > count  # once it exists, the answer goes on

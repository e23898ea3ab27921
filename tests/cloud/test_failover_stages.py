"""Failover inside one stage, frame by frame: an answer cut off mid-sentence is finished by
the next provider without a word said twice; a TTS that stops mid-sentence hands over
only what was not spoken; errors are translated with ``retryable``; racing a late LLM."""

from __future__ import annotations

import asyncio

import pytest

pytest.importorskip("openai", reason="needs the openai extra")
pytest.importorskip("anthropic", reason="needs the anthropic extra")

from pipecat.frames.frames import (  # noqa: E402
    LLMContextFrame,
    LLMFullResponseEndFrame,
    LLMFullResponseStartFrame,
    LLMTextFrame,
    TTSStoppedFrame,
    TTSTextFrame,
)
from pipecat.processors.aggregators.llm_context import LLMContext  # noqa: E402

from tests.cloud.kit import ANSWER, KEYS, VOICE  # noqa: E402
from tests.fakes.anthropic_api import FakeAnthropic, MessageReply  # noqa: E402
from tests.fakes.elevenlabs import FakeElevenLabs  # noqa: E402
from tests.fakes.openai_api import ChatReply, FakeOpenAI  # noqa: E402
from tests.vendors.harness import run_pipeline  # noqa: E402
from voxline.errors import ProviderError, translate  # noqa: E402
from voxline.integrations.providers.failover.llm import CONTINUE, Repeat  # noqa: E402
from voxline.integrations.providers.registry import build_chain, build_tts  # noqa: E402
from voxline.spec import LLMBlock, TTSBlock  # noqa: E402


@pytest.fixture(autouse=True)
def _keys(monkeypatch):
    for name, value in KEYS.items():
        monkeypatch.setenv(name, value)


class StallsMidAnswer(FakeOpenAI):
    """Streams the first ``chunks`` SSE events of an answer, then nothing (held open)."""

    def __init__(self, chunks: int, **kwargs):
        super().__init__(**kwargs)
        self.chunks = chunks

    async def stream(self, request, chunks, content_type, status=200, headers=None):
        from aiohttp import web

        response = web.StreamResponse(status=status, headers={"Content-Type": content_type})
        await response.prepare(request)
        for i, chunk in enumerate(chunks):
            if i == self.chunks:
                await self.faults._released.wait()
            await response.write(chunk.encode() if isinstance(chunk, str) else chunk)
        await response.write_eof()
        return response


def ask() -> LLMContextFrame:
    return LLMContextFrame(LLMContext(messages=[{"role": "system", "content": "Be brief."},
                                                {"role": "user", "content": "When do you open?"}]))


@pytest.mark.parametrize("fallback_says", [" at noon. The kitchen closes at ten.", ANSWER],
                         ids=["continues", "starts-over"])
async def test_an_answer_cut_off_mid_sentence_is_finished_once(fallback_says):
    """The primary says "We open" and stalls: the caller must hear "We open at noon. ..."
    once, whether the fallback continues or starts the answer over."""
    async with StallsMidAnswer(3, replies=[ChatReply(text=ANSWER)]) as primary, \
            FakeAnthropic(replies=[MessageReply(text=fallback_says)]) as fallback, \
            FakeElevenLabs() as voice:
        llm = build_chain("llm", [LLMBlock(provider="openai", base_url=f"{primary.url}/v1"),
                                  LLMBlock(provider="anthropic", base_url=fallback.url)],
                          max_tool_calls_per_turn=2)
        tts = build_tts(TTSBlock(provider="elevenlabs", voice=VOICE, base_url=voice.url))
        async with run_pipeline(llm, tts, audio_out=16000, metrics=True) as run:
            await run.send(ask())
            await run.down.wait_for(TTSStoppedFrame, timeout=10)
            await asyncio.sleep(0.2)
        primary.faults.release()
        continued = fallback.bodies[0]["messages"]

    assert [f.text for f in run.down.of(TTSTextFrame)] == ANSWER.split()  # spoken once, in order
    assert len(run.down.of(LLMFullResponseStartFrame)) == len(run.down.of(LLMFullResponseEndFrame)) == 1
    # The fallback was shown what the caller already heard, and asked to go on.
    assert continued[-2] == {"role": "assistant", "content": [{"type": "text", "text": "We open"}]} \
        or continued[-2]["content"] == "We open"
    assert CONTINUE in str(continued[-1]["content"])


def test_repeat_drops_what_was_said():
    r = Repeat("Sure. We open")
    assert r.feed(" We") == "" and r.feed(" open") == "" and r.feed(" at noon.") == " at noon."
    r = Repeat("Sure. We open")
    assert r.feed("Sure.") == "" and r.feed(" We open at") == " at"
    r = Repeat("We open")
    assert r.feed(" at") == " at"  # a continuation goes straight out
    r = Repeat("We open")
    assert r.feed("noon") == " noon"  # no word of the answer begins so: out at once
    r = Repeat("We open")
    assert r.feed("We") == "" and r.flush() == " We"  # held while it could be a repeat


async def test_tts_cut_off_mid_sentence_hands_over_only_the_unspoken_words():
    """ElevenLabs confirms words from its alignment; after it stalls, OpenAI TTS gets the
    words it had not confirmed, and the caller hears every word once."""
    async with FakeElevenLabs(chunk_secs=0.5) as first, FakeOpenAI() as second:
        first.faults.stall_after_first_chunk = True
        tts = build_chain("tts", [TTSBlock(provider="elevenlabs", voice=VOICE, base_url=first.url),
                                  TTSBlock(provider="openai", base_url=f"{second.url}/v1")])
        async with run_pipeline(tts, audio_out=16000) as run:
            await run.send(LLMFullResponseStartFrame())
            for word in ANSWER.split(" "):
                await run.send(LLMTextFrame(word + " "))
            await run.send(LLMFullResponseEndFrame())
            await run.down.wait_for(LLMFullResponseEndFrame, timeout=10)
        first.faults.release()
        asked = [r.body["input"] for r in second.of("audio/speech")]

    words = [w for f in run.down.of(TTSTextFrame) for w in f.text.split()]
    assert words == ANSWER.split()
    spoken_first = len(words) - len(" ".join(asked).split())
    assert spoken_first >= 1  # ElevenLabs got some words out before it stalled
    assert " ".join(asked).split() == ANSWER.split()[spoken_first:]  # only the rest was resent


async def test_a_late_llm_is_raced_and_the_first_answer_wins():
    """The primary's first byte is late but comes before the fallback's: it is heard,
    the fallback is stopped, and nothing fails over."""
    async with FakeOpenAI(replies=[ChatReply(text="Primary.")]) as primary, \
            FakeAnthropic(replies=[MessageReply(text="Fallback.")]) as fallback:
        primary.faults.first_byte_delay = 1.0
        fallback.faults.first_byte_delay = 2.0
        llm = build_chain("llm", [LLMBlock(provider="openai", base_url=f"{primary.url}/v1"),
                                  LLMBlock(provider="anthropic", base_url=fallback.url)],
                          max_tool_calls_per_turn=2)
        async with run_pipeline(llm, metrics=True) as run:
            await run.send(ask())
            await run.down.wait_for(LLMFullResponseEndFrame, timeout=10)
        assert len(fallback.requests) == 1  # it was started at the deadline
    assert "".join(f.text for f in run.down.of(LLMTextFrame)) == "Primary."
    assert llm.failovers == 0 and all(m.healthy for m in llm.members)


@pytest.mark.parametrize(("status", "retryable"), [(500, True), (503, True), (429, True), (408, True),
                                                   (400, False), (401, False), (404, False), (422, False)])
def test_vendor_errors_are_translated_with_retryable(status, retryable):
    import httpx
    import openai

    request = httpx.Request("POST", "http://vendor/v1/chat/completions")
    error = openai.APIStatusError("refused", response=httpx.Response(status, request=request), body=None)
    translated = translate(error, provider="openai")
    assert isinstance(translated, ProviderError)
    assert (translated.status, translated.retryable, translated.provider) == (status, retryable, "openai")
    # Pipecat reports some failures as text only: the status is read from the words.
    assert translate(None, f"Error getting audio (status: {status}, error: x)").retryable is retryable


def test_connection_failures_are_retryable():
    import httpx
    import openai

    refused = translate(openai.APIConnectionError(request=httpx.Request("POST", "http://x")))
    assert (refused.kind, refused.retryable) == ("connection", True)
    assert translate(ConnectionRefusedError(111, "refused")).kind == "connection"
    assert translate(None, "Unknown error occurred: [Errno 111] Connect call failed").kind == "connection"

"""Pipecat's OpenAI services (through the openai SDK) against the fake OpenAI API."""

from __future__ import annotations

import io
import json
import wave

import pytest

pytest.importorskip("openai", reason="needs the openai extra")

from pipecat.adapters.llm.schemas.function_schema import FunctionSchema  # noqa: E402
from pipecat.adapters.llm.schemas.tools_schema import ToolsSchema  # noqa: E402
from pipecat.frames.frames import (  # noqa: E402
    ErrorFrame,
    FunctionCallsStartedFrame,
    LLMContextFrame,
    LLMFullResponseEndFrame,
    LLMRunFrame,
    LLMTextFrame,
    TranscriptionFrame,
    TTSAudioRawFrame,
    TTSSpeakFrame,
    TTSStoppedFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.processors.aggregators.llm_context import LLMContext  # noqa: E402
from pipecat.processors.aggregators.llm_response_universal import (  # noqa: E402
    LLMContextAggregatorPair,
    LLMUserAggregatorParams,
)
from pipecat.processors.frame_processor import FrameDirection  # noqa: E402
from pipecat.services.openai.llm import OpenAILLMService  # noqa: E402
from pipecat.services.openai.stt import OpenAISTTService  # noqa: E402
from pipecat.services.openai.tts import OpenAITTSService  # noqa: E402
from pipecat.turns.user_stop import SpeechTimeoutUserTurnStopStrategy  # noqa: E402
from pipecat.turns.user_turn_strategies import UserTurnStrategies  # noqa: E402

from tests.fakes.openai_api import ChatReply, FakeOpenAI, ToolCall  # noqa: E402
from tests.vendors.harness import (  # noqa: E402
    GO_FORWARD_TEXT,
    Collect,
    audio_frames,
    run_pipeline,
    speech_16k,
)

KEY = "sk-test"
WEATHER = FunctionSchema(name="get_weather", description="Current weather in a city.",
                         properties={"city": {"type": "string"}, "unit": {"type": "string", "enum": ["c", "f"]}},
                         required=["city"])


def llm(fake: FakeOpenAI, **kwargs) -> OpenAILLMService:
    return OpenAILLMService(api_key=KEY, base_url=f"{fake.url}/v1", **kwargs)


def ask(text: str, **kwargs) -> LLMContextFrame:
    return LLMContextFrame(LLMContext(messages=[{"role": "user", "content": text}], **kwargs))


async def test_streamed_answer_and_usage():
    async with FakeOpenAI(api_key=KEY, replies=[ChatReply(text="We open at noon.", prompt_tokens=33)]) as fake:
        service = llm(fake, settings=OpenAILLMService.Settings(model="gpt-4.1-mini", temperature=0.2))
        async with run_pipeline(service, metrics=True) as run:
            await run.send(ask("When do you open?"))
            await run.down.wait_for(LLMFullResponseEndFrame)
        request = fake.of("chat/completions")[0]

    assert "".join(f.text for f in run.down.of(LLMTextFrame)) == "We open at noon."
    assert request.headers["authorization"] == f"Bearer {KEY}"
    body = request.body
    assert (body["model"], body["stream"], body["stream_options"], body["temperature"]) == \
        ("gpt-4.1-mini", True, {"include_usage": True}, 0.2)
    assert body["messages"][-1] == {"role": "user", "content": "When do you open?"}
    usage = run.down.usage()
    assert [(u.prompt_tokens, u.completion_tokens) for u in usage] == [(33, 4)]


async def test_tool_calls_are_parsed_run_and_answered():
    calls = [ToolCall("get_weather", '{"city": "Paris", "unit": "c"}'), ToolCall("get_weather", '{"city": "Oslo"}')]
    async with FakeOpenAI(replies=[ChatReply(tool_calls=calls), ChatReply(text="Paris is mild, Oslo cold.")]) as fake:
        service = llm(fake)
        seen: list[dict] = []

        async def get_weather(params):
            seen.append(dict(params.arguments))
            await params.result_callback({"temp_c": 14 if params.arguments["city"] == "Paris" else -3})

        service.register_function("get_weather", get_weather)
        context = LLMContext(messages=[{"role": "user", "content": "Weather in Paris and Oslo?"}],
                             tools=ToolsSchema(standard_tools=[WEATHER]))
        pair = LLMContextAggregatorPair(context, user_params=LLMUserAggregatorParams(
            user_turn_strategies=UserTurnStrategies(stop=[SpeechTimeoutUserTurnStopStrategy()])))
        out = Collect(FrameDirection.DOWNSTREAM)
        async with run_pipeline(pair.user(), service, out, pair.assistant()) as run:
            await run.send(LLMRunFrame())
            await fake.wait_until(lambda: len(fake.chat_requests) == 2)
            await out.wait_for(LLMTextFrame, lambda f: "cold" in f.text)
        first, second = fake.chat_requests

    assert seen == [{"city": "Paris", "unit": "c"}, {"city": "Oslo"}]  # arguments reassembled from deltas
    assert [c.function_name for c in out.of(FunctionCallsStartedFrame)[0].function_calls] == ["get_weather"] * 2
    assert first["tools"] == [{"type": "function", "function": {
        "name": "get_weather", "description": "Current weather in a city.",
        "parameters": {"type": "object", "properties": WEATHER.properties, "required": ["city"]}}}]
    # The follow-up replays each call as its own assistant message, followed by its result.
    roles = [(m["role"], m.get("tool_call_id") or [c["id"] for c in m.get("tool_calls", [])])
             for m in second["messages"]]
    assert roles[1:] == [("assistant", ["call_0_get_weather"]), ("tool", "call_0_get_weather"),
                         ("assistant", ["call_1_get_weather"]), ("tool", "call_1_get_weather")]
    results = {m["tool_call_id"]: json.loads(m["content"]) for m in second["messages"] if m["role"] == "tool"}
    assert results == {"call_0_get_weather": {"temp_c": 14}, "call_1_get_weather": {"temp_c": -3}}


@pytest.mark.parametrize("settings", [None, OpenAILLMService.Settings(temperature=0.5)],
                         ids=["no-settings", "settings-without-model"])
async def test_unset_model_is_sent_as_the_default_model(settings):
    """Built without a model, the service must still name one (the API rejects null)."""
    async with FakeOpenAI() as fake:
        service = llm(fake) if settings is None else llm(fake, settings=settings)
        async with run_pipeline(service) as run:
            await run.send(ask("Hi"))
            await run.down.wait_for(LLMFullResponseEndFrame)
    model = fake.chat_requests[0]["model"]
    assert isinstance(model, str) and model == "gpt-4.1"
    assert not run.up.of(ErrorFrame)


async def test_explicit_none_model_reaches_the_wire_as_null():
    """Settings(model=None) replaces the default with None: the request says `model: null`
    and the API answers 400. (voxline's registry builds the service this way when an
    agent names no model.)"""
    async with FakeOpenAI() as fake:
        async with run_pipeline(llm(fake, settings=OpenAILLMService.Settings(model=None))) as run:
            await run.send(ask("Hi"))
            error = await run.up.wait_for(ErrorFrame)
    assert fake.chat_requests[0]["model"] is None
    assert "model" in error.error


async def test_one_5xx_is_retried_by_the_sdk():
    """faults.times=1: the first request fails, the SDK retries, Pipecat never sees it."""
    async with FakeOpenAI(replies=[ChatReply(text="Still here.")]) as fake:
        fake.faults.status, fake.faults.times = 503, 1
        async with run_pipeline(llm(fake)) as run:
            await run.send(ask("Hello?"))
            await run.down.wait_for(LLMFullResponseEndFrame)
    assert len(fake.chat_requests) == 2 and not run.up.of(ErrorFrame)
    assert "".join(f.text for f in run.down.of(LLMTextFrame)) == "Still here."


async def test_stalled_stream_resumes_on_release():
    """stall_after_first_chunk, as failover tests will use it."""
    async with FakeOpenAI(replies=[ChatReply(text="Sorry for the wait.")]) as fake:
        fake.faults.stall_after_first_chunk = True
        async with run_pipeline(llm(fake)) as run:
            await run.send(ask("Hello?"))
            with pytest.raises(TimeoutError):  # only the opening chunk is out
                await run.down.wait_for(LLMTextFrame, timeout=0.5)
            fake.faults.release()
            await run.down.wait_for(LLMFullResponseEndFrame)
    assert "".join(f.text for f in run.down.of(LLMTextFrame)) == "Sorry for the wait."


async def test_transcription_of_a_vad_segment():
    pcm = speech_16k()
    async with FakeOpenAI(api_key=KEY, transcripts=[GO_FORWARD_TEXT]) as fake:
        stt = OpenAISTTService(api_key=KEY, base_url=f"{fake.url}/v1")
        async with run_pipeline(stt) as run:
            await run.send(VADUserStartedSpeakingFrame(), *audio_frames(pcm), VADUserStoppedSpeakingFrame())
            final = await run.down.wait_for(TranscriptionFrame)
        fields = fake.of("audio/transcriptions")[0].body

    assert final.text == GO_FORWARD_TEXT
    assert (fields["model"], fields["language"]) == ("gpt-transcribe", "en")
    upload = fields["file"]
    assert (upload["filename"], upload["content_type"]) == ("audio.wav", "audio/wav")
    with wave.open(io.BytesIO(upload["data"])) as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (16000, 1, 2)
        assert pcm[:32000] in w.readframes(w.getnframes())  # the speech itself, as sent


async def test_speech_is_streamed_pcm():
    async with FakeOpenAI(api_key=KEY) as fake:
        tts = OpenAITTSService(api_key=KEY, base_url=f"{fake.url}/v1",
                               settings=OpenAITTSService.Settings(voice="nova"))
        async with run_pipeline(tts, audio_out=24000) as run:
            await run.send(TTSSpeakFrame("Your table is booked."))
            await run.down.wait_for(TTSStoppedFrame)
        body = fake.of("audio/speech")[0].body

    assert body == {"input": "Your table is booked.", "model": "gpt-4o-mini-tts", "voice": "nova",
                    "response_format": "pcm"}
    frames = run.down.of(TTSAudioRawFrame)
    assert b"".join(f.audio for f in frames) == fake.speech_audio("Your table is booked.")
    assert {f.sample_rate for f in frames} == {24000}

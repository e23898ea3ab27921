"""A field the spec does not set is not passed: each service keeps its own default.

``llm: {provider: openai}`` once sent ``"model": null``; and LLMBlock's temperature
and max_tokens defaults (chosen for the local model) overrode every vendor's own.
"""

from __future__ import annotations

import pytest
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.services.anthropic.llm import AnthropicLLMService
from pipecat.services.deepgram.stt import DeepgramSTTService
from pipecat.services.elevenlabs.tts import ElevenLabsTTSService
from pipecat.services.openai.llm import OpenAILLMService
from pipecat.services.openai.stt import OpenAISTTService
from pipecat.services.openai.tts import OpenAITTSService
from typer.testing import CliRunner

from tests.fakes.openai_chat import FakeOpenAIChat, Reply
from tests.fakes.twilio_loopback import serve
from voxline.cli import app
from voxline.integrations.providers.registry import build_llm, build_stt, build_tts, describe_providers
from voxline.spec import LLMBlock, STTBlock, TTSBlock, parse_spec

KEYS = ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "DEEPGRAM_API_KEY", "ELEVENLABS_API_KEY")


@pytest.fixture(autouse=True)
def _keys(monkeypatch):
    for key in KEYS:
        monkeypatch.setenv(key, "test")


def _pipecat_default(service_cls, field="model"):
    return getattr(service_cls(api_key="test")._settings, field)


LLM, STT = {"max_tool_calls_per_turn": 2}, {"language": "en"}


@pytest.mark.parametrize(("build", "block", "kwargs", "service_cls", "fields"), [
    (build_llm, LLMBlock(provider="openai"), LLM, OpenAILLMService, ("model", "temperature", "max_tokens")),
    (build_llm, LLMBlock(provider="anthropic"), LLM, AnthropicLLMService, ("model", "temperature", "max_tokens")),
    (build_stt, STTBlock(provider="deepgram"), STT, DeepgramSTTService, ("model",)),
    (build_stt, STTBlock(provider="openai"), STT, OpenAISTTService, ("model",)),
    (build_tts, TTSBlock(provider="elevenlabs"), {}, ElevenLabsTTSService, ("model", "voice")),
    (build_tts, TTSBlock(provider="openai"), {}, OpenAITTSService, ("model", "voice")),
])
def test_a_block_without_model_or_voice_gets_the_service_defaults(build, block, kwargs, service_cls, fields):
    service = build(block, **kwargs)
    assert isinstance(service, service_cls)
    for field in fields:
        assert getattr(service._settings, field) == _pipecat_default(service_cls, field), field
    assert service._settings.model  # never None


def test_what_the_spec_sets_is_passed():
    llm = build_llm(LLMBlock(provider="openai", model="gpt-4o-mini", temperature=0.7, max_tokens=99),
                    max_tool_calls_per_turn=2)
    assert (llm._settings.model, llm._settings.temperature, llm._settings.max_tokens) == ("gpt-4o-mini", 0.7, 99)
    tts = build_tts(TTSBlock(provider="elevenlabs", voice="voice-1", model="eleven_turbo_v2_5"))
    assert (tts._settings.voice, tts._settings.model) == ("voice-1", "eleven_turbo_v2_5")
    assert build_tts(TTSBlock(provider="openai", voice="nova"))._settings.voice == "nova"
    assert build_stt(STTBlock(provider="deepgram", model="nova-2"), "en")._settings.model == "nova-2"


async def test_the_request_carries_the_service_default_model_and_no_unset_sampling():
    fake = FakeOpenAIChat(fallback=Reply(text="Hello."))
    async with serve(fake.app()) as base:
        spec = parse_spec({"name": "a", "prompt": "p", "llm": {"provider": "openai", "base_url": f"{base}/v1"}})
        llm = build_llm(spec.llm, max_tool_calls_per_turn=2)
        stream = await llm.get_chat_completions(LLMContext(messages=[{"role": "user", "content": "hi"}]))
        text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text == "Hello."
    (body,) = fake.requests
    assert body["model"] == _pipecat_default(OpenAILLMService) == "gpt-4.1"
    assert "temperature" not in body and "max_tokens" not in body


def test_describe_and_check_name_the_model_each_provider_will_use(tmp_path):
    spec = parse_spec({"name": "a", "prompt": "p", "stt": {"provider": "deepgram"},
                       "llm": {"provider": "openai"}, "tts": {"provider": "openai", "voice": "nova"}})
    assert describe_providers(spec) == [
        ("stt", "deepgram", "service default (nova-3-general)"),
        ("llm", "openai", "service default (gpt-4.1)"),
        ("tts", "openai", "service default (gpt-4o-mini-tts), voice nova"),
    ]
    local = parse_spec({"name": "b", "prompt": "p", "tts": {"provider": "espeak"}})
    assert describe_providers(local) == [("stt", "whisper", "whisper-base"),
                                         ("llm", "llama", "qwen2.5-coder-0.5b-instruct"),
                                         ("tts", "espeak", "espeak-ng en-us")]

    (tmp_path / "agent.yaml").write_text(
        "name: a\nprompt: p\nllm: {provider: openai}\ntts: {provider: espeak}\n")
    result = CliRunner().invoke(app, ["check", str(tmp_path / "agent.yaml")])
    assert result.exit_code == 0, result.output
    assert "llm: openai -> service default (gpt-4.1)" in result.output
    assert "stt: whisper -> whisper-base" in result.output

"""A vendor service's HTTP client is closed with the call, not left to the garbage collector
(whose ``__del__`` schedules the close on whatever loop runs then, or on a closed one)."""

from __future__ import annotations

import pytest

from voxline.integrations.providers import registry
from voxline.spec import LLMBlock, STTBlock, TTSBlock

BLOCKS = [
    ("llm", LLMBlock(provider="openai", model="gpt-4o-mini")),
    ("llm", LLMBlock(provider="openai_compatible", base_url="http://127.0.0.1:9/v1", model="m")),
    ("llm", LLMBlock(provider="anthropic", model="claude-3-5-haiku-latest")),
    ("llm", LLMBlock(provider="anthropic", base_url="http://127.0.0.1:9", model="claude-3-5-haiku-latest")),
    ("stt", STTBlock(provider="openai", model="gpt-4o-transcribe")),
    ("tts", TTSBlock(provider="openai", model="gpt-4o-mini-tts", voice="alloy")),
]


def _build(kind: str, block):
    if kind == "llm":
        return registry.build_llm(block, max_tool_calls_per_turn=3)
    if kind == "stt":
        return registry.build_stt(block, language="en")
    return registry.build_tts(block)


@pytest.mark.parametrize(("kind", "block"), BLOCKS, ids=[f"{k}-{b.provider}-{i}" for i, (k, b) in enumerate(BLOCKS)])
async def test_cleanup_closes_the_vendor_client(kind, block, monkeypatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "test-key")
    service = _build(kind, block)
    client = service._client
    assert not client.is_closed()
    await service.cleanup()
    assert client.is_closed()
    # Logs, metrics and usage name the service by its class, as before.
    assert type(service).__name__ == type(service).__mro__[1].__name__

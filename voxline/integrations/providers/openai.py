"""OpenAI: speech-to-text, chat (also any OpenAI-compatible server) and text-to-speech."""

from __future__ import annotations

import os
from typing import Any

from voxline.extras import require
from voxline.integrations.providers.common import describe, given, secret
from voxline.spec import LLMBlock, STTBlock, TTSBlock


def _openai() -> None:
    require("openai", "openai")


def build_stt(block: STTBlock, *, language: str, sample_rate: int | None = None) -> Any:
    _openai()
    from pipecat.services.openai.stt import OpenAISTTService

    return OpenAISTTService(
        api_key=secret("OPENAI_API_KEY"), **given(block, "base_url"), sample_rate=sample_rate,
        settings=OpenAISTTService.Settings(**given(block, "model")), **block.options,
    )


def build_llm(block: LLMBlock, *, max_tool_calls_per_turn: int) -> Any:
    _openai()
    from pipecat.services.openai.llm import OpenAILLMService

    key = os.environ.get("OPENAI_API_KEY", "none") if block.provider == "openai_compatible" \
        else secret("OPENAI_API_KEY")
    return OpenAILLMService(
        api_key=key, **given(block, "base_url"),
        settings=OpenAILLMService.Settings(**given(block, "model", "temperature", "max_tokens")),
    )


def build_tts(block: TTSBlock) -> Any:
    _openai()
    from pipecat.services.openai.tts import OpenAITTSService

    return OpenAITTSService(
        api_key=secret("OPENAI_API_KEY"), **given(block, "base_url"),
        settings=OpenAITTSService.Settings(**given(block, "model", "voice")), **block.options,
    )


def describe_stt(block: STTBlock) -> str:
    from pipecat.services.openai.stt import OpenAISTTService

    return describe(block, OpenAISTTService)


def describe_llm(block: LLMBlock) -> str:
    from pipecat.services.openai.llm import OpenAILLMService

    return describe(block, OpenAILLMService)


def describe_tts(block: TTSBlock) -> str:
    from pipecat.services.openai.tts import OpenAITTSService

    return f"{describe(block, OpenAITTSService)}, voice {describe(block, OpenAITTSService, 'voice')}"

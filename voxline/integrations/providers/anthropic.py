"""Anthropic: Claude as the call's LLM."""

from __future__ import annotations

from typing import Any

from voxline.errors import translate
from voxline.extras import require
from voxline.integrations.providers.common import chosen, closing_client, describe, given, secret
from voxline.spec import LLMBlock


def build_llm(block: LLMBlock, *, max_tool_calls_per_turn: int) -> Any:
    anthropic = require("anthropic", "anthropic")
    from pipecat.services.anthropic.llm import AnthropicLLMService

    key = secret("ANTHROPIC_API_KEY")
    # Pipecat takes no base URL for Anthropic, only a client of our own.
    client = anthropic.AsyncAnthropic(api_key=key, base_url=block.base_url) if block.base_url else None
    return closing_client(AnthropicLLMService)(
        api_key=key, client=client,
        settings=AnthropicLLMService.Settings(**given(block, "model", "temperature", "max_tokens")),
    )


def describe_llm(block: LLMBlock) -> str:
    from pipecat.services.anthropic.llm import AnthropicLLMService

    return describe(block, AnthropicLLMService)


async def probe_llm(block: LLMBlock) -> None:
    anthropic = require("anthropic", "anthropic")
    from pipecat.services.anthropic.llm import AnthropicLLMService

    client = anthropic.AsyncAnthropic(api_key=secret("ANTHROPIC_API_KEY"), base_url=block.base_url,
                                      max_retries=0)
    try:
        async with client:
            stream = await client.messages.create(
                model=chosen(block, AnthropicLLMService), max_tokens=1, stream=True,
                messages=[{"role": "user", "content": "Say OK."}])
            async for _ in stream:
                pass
    except Exception as e:
        raise translate(e, provider="anthropic") from e

"""Provider blocks of an AgentSpec → Pipecat services, through one table.

``PROVIDERS`` says, for each ``kind:provider``, the extra that installs it, the
environment variable holding its secret, whether it needs a local model or a base URL,
the factory that builds its service and what ``voxline check`` says it will use.
``check_providers`` and ``describe_providers`` read the same table, so what
``voxline check`` reports is what building would hit. The factories live in one small
module per vendor family and import their SDK only when called, so a missing extra
only matters for the providers an agent actually uses.

A field the spec does not set is not passed: each service keeps its own default.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from voxline.errors import ModelMissingError, VoxlineError
from voxline.integrations.providers import anthropic, deepgram, elevenlabs, openai
from voxline.integrations.providers import local_factories as local
from voxline.integrations.providers.local import manifest
from voxline.integrations.providers.local_factories import DEFAULT_MODELS, model_name
from voxline.spec import AgentSpec, LLMBlock, ProviderBlock, STTBlock, TTSBlock

__all__ = ["DEFAULT_MODELS", "PROVIDERS", "Provider", "build_llm", "build_stt", "build_tts",
           "check_providers", "describe_providers", "model_name"]


@dataclass(frozen=True)
class Provider:
    kind: str  # stt | llm | tts
    extra: str
    secret: str | None = None  # env var that must be set
    local_model: bool = False
    requires_base_url: bool = False
    factory: Callable[..., Any] | None = None  # (block, **kind-specific arguments) -> service
    describe: Callable[[Any], str] | None = None  # block -> the model/voice it will use


PROVIDERS: dict[str, Provider] = {
    "stt:whisper": Provider("stt", "local", local_model=True,
                            factory=local.build_whisper, describe=local.describe_local),
    "stt:deepgram": Provider("stt", "deepgram", secret="DEEPGRAM_API_KEY",
                             factory=deepgram.build_stt, describe=deepgram.describe_stt),
    "stt:openai": Provider("stt", "openai", secret="OPENAI_API_KEY",
                           factory=openai.build_stt, describe=openai.describe_stt),
    "llm:llama": Provider("llm", "local", local_model=True,
                          factory=local.build_llama, describe=local.describe_local),
    "llm:openai": Provider("llm", "openai", secret="OPENAI_API_KEY",
                           factory=openai.build_llm, describe=openai.describe_llm),
    "llm:openai_compatible": Provider("llm", "openai", requires_base_url=True,
                                      factory=openai.build_llm, describe=openai.describe_llm),
    "llm:anthropic": Provider("llm", "anthropic", secret="ANTHROPIC_API_KEY",
                              factory=anthropic.build_llm, describe=anthropic.describe_llm),
    "tts:piper": Provider("tts", "piper", local_model=True,
                          factory=local.build_piper, describe=local.describe_piper),
    "tts:espeak": Provider("tts", "local", factory=local.build_espeak, describe=local.describe_espeak),
    "tts:elevenlabs": Provider("tts", "elevenlabs", secret="ELEVENLABS_API_KEY",
                               factory=elevenlabs.build_tts, describe=elevenlabs.describe_tts),
    "tts:openai": Provider("tts", "openai", secret="OPENAI_API_KEY",
                           factory=openai.build_tts, describe=openai.describe_tts),
}


def _blocks(spec: AgentSpec) -> list[tuple[str, str, ProviderBlock]]:
    """(kind, field path, block) of every block, primaries then their fallbacks in order."""
    rows = []
    for kind in ("stt", "llm", "tts"):
        rows.append((kind, kind, getattr(spec, kind)))
        for i, block in enumerate(getattr(spec, f"{kind}_fallbacks", ())):
            rows.append((kind, f"{kind}_fallbacks.{i}", block))
    return rows


def _provider(kind: str, block: ProviderBlock) -> Provider:
    provider = PROVIDERS.get(f"{kind}:{block.provider}")
    if provider is None or provider.factory is None:
        raise VoxlineError(f"unknown {kind} provider {block.provider!r}")
    return provider


def check_providers(spec: AgentSpec) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    for kind, path, block in _blocks(spec):
        provider = PROVIDERS.get(f"{kind}:{block.provider}")
        if provider is None:
            known = sorted(k.split(":")[1] for k in PROVIDERS if k.startswith(kind))
            problems.append((f"{path}.provider", f"unknown {kind} provider {block.provider!r}; "
                             f"known: {', '.join(known)}"))
            continue
        if provider.secret and not os.environ.get(provider.secret):
            problems.append((f"{path}.provider", f"{block.provider} needs the environment "
                             f"variable {provider.secret}, which is not set"))
        if provider.requires_base_url and not block.base_url:
            problems.append((f"{path}.base_url", f"{block.provider} needs base_url"))
        if provider.local_model:
            try:
                manifest.resolve(model_name(block))
            except ModelMissingError as e:
                if kind == "tts" and block.provider == "piper":
                    continue  # Piper falls back to espeak-ng; see local_factories.build_piper
                problems.append((f"{path}.model", str(e)))
    return problems


def describe_providers(spec: AgentSpec) -> list[tuple[str, str, str]]:
    """(kind, provider, the model/voice it will use) for each of the spec's providers,
    fallbacks after their primary."""
    rows = []
    for kind, _, block in _blocks(spec):
        provider = PROVIDERS.get(f"{kind}:{block.provider}")
        used = provider.describe(block) if provider and provider.describe else "unknown provider"
        rows.append((kind, block.provider, used))
    return rows


def build_stt(block: STTBlock, language: str, sample_rate: int | None = None) -> Any:
    """``sample_rate``: the rate of the audio the service receives (None: the pipeline's)."""
    return _provider("stt", block).factory(block, language=language, sample_rate=sample_rate)  # type: ignore[misc]


def build_llm(block: LLMBlock, *, max_tool_calls_per_turn: int) -> Any:
    return _provider("llm", block).factory(block, max_tool_calls_per_turn=max_tool_calls_per_turn)  # type: ignore[misc]


def build_tts(block: TTSBlock) -> Any:
    return _provider("tts", block).factory(block)  # type: ignore[misc]


BUILDERS: dict[str, Callable[..., Any]] = {"stt": build_stt, "llm": build_llm, "tts": build_tts}

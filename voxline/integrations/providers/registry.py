"""Provider blocks of an AgentSpec → Pipecat services.

One table says, for each provider, the extra that installs it, the environment
variable holding its secret, and the local model it needs. ``check_providers`` reads
the same table, so what ``voxline check`` reports is exactly what building would hit.
Vendor SDK imports happen inside the factories, so a missing extra only matters for
the providers an agent actually uses.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from voxline.errors import MissingSecretError, ModelMissingError, VoxlineError
from voxline.extras import require
from voxline.integrations.providers.local import manifest
from voxline.integrations.providers.local.first_clause import use_first_clause
from voxline.spec import AgentSpec, LLMBlock, ProviderBlock, STTBlock, TTSBlock

DEFAULT_MODELS = {"whisper": "whisper-base", "llama": "qwen2.5-coder-0.5b-instruct", "piper": "piper-en-us"}


@dataclass(frozen=True)
class Provider:
    kind: str  # stt | llm | tts
    extra: str
    secret: str | None = None  # env var that must be set
    local_model: bool = False
    requires_base_url: bool = False


PROVIDERS: dict[str, Provider] = {
    "stt:whisper": Provider("stt", "local", local_model=True),
    "stt:deepgram": Provider("stt", "deepgram", secret="DEEPGRAM_API_KEY"),
    "stt:openai": Provider("stt", "openai", secret="OPENAI_API_KEY"),
    "llm:llama": Provider("llm", "local", local_model=True),
    "llm:openai": Provider("llm", "openai", secret="OPENAI_API_KEY"),
    "llm:openai_compatible": Provider("llm", "openai", requires_base_url=True),
    "llm:anthropic": Provider("llm", "anthropic", secret="ANTHROPIC_API_KEY"),
    "tts:piper": Provider("tts", "piper", local_model=True),
    "tts:espeak": Provider("tts", "local"),
    "tts:elevenlabs": Provider("tts", "elevenlabs", secret="ELEVENLABS_API_KEY"),
    "tts:openai": Provider("tts", "openai", secret="OPENAI_API_KEY"),
}


def _secret(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        raise MissingSecretError(f"environment variable {name} is not set")
    return value


def model_name(block: ProviderBlock) -> str:
    return block.model or DEFAULT_MODELS[block.provider]


def check_providers(spec: AgentSpec) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    for kind, block in (("stt", spec.stt), ("llm", spec.llm), ("tts", spec.tts)):
        provider = PROVIDERS.get(f"{kind}:{block.provider}")
        if provider is None:
            known = sorted(k.split(":")[1] for k in PROVIDERS if k.startswith(kind))
            problems.append((f"{kind}.provider", f"unknown {kind} provider {block.provider!r}; "
                             f"known: {', '.join(known)}"))
            continue
        if provider.secret and not os.environ.get(provider.secret):
            problems.append((f"{kind}.provider", f"{block.provider} needs the environment "
                             f"variable {provider.secret}, which is not set"))
        if provider.requires_base_url and not block.base_url:
            problems.append((f"{kind}.base_url", f"{block.provider} needs base_url"))
        if provider.local_model:
            try:
                manifest.resolve(model_name(block))
            except ModelMissingError as e:
                if kind == "tts" and block.provider == "piper":
                    continue  # Piper falls back to espeak-ng; see build_tts
                problems.append((f"{kind}.model", str(e)))
    return problems


def build_stt(block: STTBlock, language: str, sample_rate: int | None = None) -> Any:
    if block.provider == "whisper":
        require("faster_whisper", "local")
        from voxline.integrations.providers.local.whisper import LocalWhisperSTTService

        root = manifest.resolve(model_name(block))
        return LocalWhisperSTTService(
            device="cpu", compute_type=block.options.get("compute_type", "int8"),
            beam_size=block.options.get("beam_size", 1),
            settings=LocalWhisperSTTService.Settings(
                model=str(root), language=language,
                no_speech_prob=block.options.get("no_speech_prob", 0.6),
            ),
        )
    if block.provider == "deepgram":
        require("deepgram", "deepgram")
        from pipecat.services.deepgram.stt import DeepgramSTTService

        return DeepgramSTTService(api_key=_secret("DEEPGRAM_API_KEY"), base_url=block.base_url or "",
                                  **block.options)
    if block.provider == "openai":
        from pipecat.services.openai.stt import OpenAISTTService

        return OpenAISTTService(api_key=_secret("OPENAI_API_KEY"), base_url=block.base_url,
                                **block.options)
    raise VoxlineError(f"unknown stt provider {block.provider!r}")


def build_llm(block: LLMBlock, *, max_tool_calls_per_turn: int) -> Any:
    from pipecat.services.openai.llm import OpenAILLMService

    settings = OpenAILLMService.Settings(
        model=block.model, temperature=block.temperature, max_tokens=block.max_tokens
    )
    if block.provider == "llama":
        require("llama_cpp", "local")
        from voxline.integrations.providers.local.llama import LlamaCppLLMService

        root = manifest.resolve(model_name(block))
        gguf = next(root.glob("*.gguf"))
        return LlamaCppLLMService(
            model_path=gguf, settings=settings, max_tool_calls_per_turn=max_tool_calls_per_turn,
            n_ctx=block.options.get("n_ctx", 4096), n_threads=block.options.get("n_threads", 2),
        )
    if block.provider in ("openai", "openai_compatible"):
        key = os.environ.get("OPENAI_API_KEY", "none") if block.provider == "openai_compatible" \
            else _secret("OPENAI_API_KEY")
        return OpenAILLMService(api_key=key, base_url=block.base_url, settings=settings)
    if block.provider == "anthropic":
        anthropic = require("anthropic", "anthropic")
        from pipecat.services.anthropic.llm import AnthropicLLMService

        key = _secret("ANTHROPIC_API_KEY")
        client = anthropic.AsyncAnthropic(api_key=key, base_url=block.base_url) if block.base_url else None
        return AnthropicLLMService(
            api_key=key, client=client,
            settings=AnthropicLLMService.Settings(model=block.model, temperature=block.temperature,
                                                  max_tokens=block.max_tokens),
        )
    raise VoxlineError(f"unknown llm provider {block.provider!r}")


def build_tts(block: TTSBlock) -> Any:
    if block.provider == "piper":
        try:
            require("piper", "piper")
            root = manifest.resolve(model_name(block))
        except (ModelMissingError, ImportError):
            # Piper is GPL and optional: without it the agent still speaks, robotically.
            return _espeak(block)
        from pipecat.services.piper.tts import PiperTTSService

        voice = next(root.glob("*.onnx")).stem
        return use_first_clause(
            PiperTTSService(download_dir=root, settings=PiperTTSService.Settings(voice=voice)))
    if block.provider == "espeak":
        return _espeak(block)
    if block.provider == "elevenlabs":
        # Pipecat speaks ElevenLabs' websocket API itself: no vendor SDK to guard.
        from pipecat.services.elevenlabs.tts import ElevenLabsTTSService

        return ElevenLabsTTSService(
            api_key=_secret("ELEVENLABS_API_KEY"), voice_id=block.voice,
            url=block.base_url or "wss://api.elevenlabs.io", **block.options,
        )
    if block.provider == "openai":
        from pipecat.services.openai.tts import OpenAITTSService

        return OpenAITTSService(api_key=_secret("OPENAI_API_KEY"), base_url=block.base_url,
                                **block.options)
    raise VoxlineError(f"unknown tts provider {block.provider!r}")


def _espeak(block: TTSBlock) -> Any:
    from voxline.integrations.providers.local.espeak import EspeakTTSService

    return use_first_clause(EspeakTTSService(voice=block.options.get("espeak_voice", "en-us")))


BUILDERS: dict[str, Callable[..., Any]] = {"stt": build_stt, "llm": build_llm, "tts": build_tts}

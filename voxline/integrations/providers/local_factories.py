"""The local providers: Whisper, llama.cpp, Piper and espeak-ng, on this machine's CPU.

Each factory builds a light per-call service over the process's loaded model
(local/shared.py); with the models loaded (shared.apreload), building one
takes milliseconds. Model names are manifest entries (local/models.json).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from voxline.errors import ModelMissingError
from voxline.extras import require
from voxline.integrations.providers.common import given
from voxline.integrations.providers.local import manifest
from voxline.integrations.providers.local.first_clause import use_first_clause
from voxline.spec import LLMBlock, ProviderBlock, STTBlock, TTSBlock

DEFAULT_MODELS = {"whisper": "whisper-base", "llama": "qwen2.5-coder-0.5b-instruct", "piper": "piper-en-us"}


def model_name(block: ProviderBlock) -> str:
    return block.model or DEFAULT_MODELS[block.provider]


def whisper_options(block: STTBlock) -> dict[str, Any]:
    """The options that select the loaded model object (shared.whisper's key)."""
    o = block.options
    return {"device": "cpu", "compute_type": o.get("compute_type", "int8"),
            "cpu_threads": o.get("cpu_threads", 0), "num_workers": o.get("num_workers", 1)}


def llama_options(block: LLMBlock) -> dict[str, Any]:
    return {"n_ctx": block.options.get("n_ctx", 4096), "n_threads": block.options.get("n_threads", 2)}


def gguf_path(block: LLMBlock) -> Path:
    return next(manifest.resolve(model_name(block)).glob("*.gguf"))


def piper_voice_path(block: TTSBlock) -> Path | None:
    """The voice's .onnx, or None when Piper or its voice is not installed."""
    try:
        require("piper", "piper")
        root = manifest.resolve(model_name(block))
    except (ModelMissingError, ImportError):
        return None
    return next(root.glob("*.onnx"))


def build_whisper(block: STTBlock, *, language: str, sample_rate: int | None = None) -> Any:
    require("faster_whisper", "local")
    from voxline.integrations.providers.local.whisper import LocalWhisperSTTService

    options = whisper_options(block)
    return LocalWhisperSTTService(
        device=options["device"], compute_type=options["compute_type"],
        cpu_threads=options["cpu_threads"], num_workers=options["num_workers"],
        beam_size=block.options.get("beam_size", 1), sample_rate=sample_rate,
        settings=LocalWhisperSTTService.Settings(
            model=str(manifest.resolve(model_name(block))), language=language,
            no_speech_prob=block.options.get("no_speech_prob", 0.6),
        ),
    )


def build_llama(block: LLMBlock, *, max_tool_calls_per_turn: int) -> Any:
    require("llama_cpp", "local")
    from pipecat.services.openai.llm import OpenAILLMService

    from voxline.integrations.providers.local.llama import LlamaCppLLMService

    return LlamaCppLLMService(
        model_path=gguf_path(block), max_tool_calls_per_turn=max_tool_calls_per_turn,
        settings=OpenAILLMService.Settings(**given(block, "temperature", "max_tokens")),
        **llama_options(block),
    )


def build_piper(block: TTSBlock) -> Any:
    voice = piper_voice_path(block)
    if voice is None:
        # Piper is GPL and optional: without it the agent still speaks, robotically.
        return build_espeak(block)
    from voxline.integrations.providers.local.piper import SharedPiperTTSService

    return use_first_clause(SharedPiperTTSService(voice_path=voice))


def build_espeak(block: TTSBlock) -> Any:
    from voxline.integrations.providers.local.espeak import EspeakTTSService

    return use_first_clause(EspeakTTSService(voice=espeak_voice(block)))


def espeak_voice(block: TTSBlock) -> str:
    """``voice: es`` (an espeak-ng voice) on an espeak block; Piper's fallback takes
    ``options.espeak_voice`` (its ``voice`` names a Piper voice)."""
    if block.provider == "espeak" and block.voice:
        return block.voice
    return str(block.options.get("espeak_voice", "en-us"))


def describe_local(block: ProviderBlock) -> str:
    return model_name(block)


def describe_piper(block: TTSBlock) -> str:
    if piper_voice_path(block) is None:
        return f"espeak-ng {block.options.get('espeak_voice', 'en-us')} (piper or its voice is not installed)"
    return model_name(block)


def describe_espeak(block: TTSBlock) -> str:
    return f"espeak-ng {espeak_voice(block)}"

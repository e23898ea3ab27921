"""Usage of one turn from Pipecat's usage metrics, and which provider served each stage.

Pipecat reports STT audio seconds, LLM tokens and TTS characters as ``MetricsFrame``s
(with ``enable_usage_metrics``); each names the processor and model. A service built
by voxline's registry carries ``voxline_provider`` (the spec's provider name); other
services are recognised by their class name.
"""

from __future__ import annotations

from typing import Any

from pipecat.frames.frames import MetricsFrame
from pipecat.metrics.metrics import LLMUsageMetricsData, STTUsageMetricsData, TTSUsageMetricsData

# Class-name prefixes of Pipecat services -> voxline provider names.
_BY_CLASS = (
    ("Deepgram", "deepgram"), ("ElevenLabs", "elevenlabs"), ("Anthropic", "anthropic"),
    ("OpenAIRealtime", "openai"), ("OpenAI", "openai"), ("LlamaCpp", "llama"),
    ("LocalWhisper", "whisper"), ("Whisper", "whisper"), ("Piper", "piper"), ("Espeak", "espeak"),
)


def provider_of(service: Any, processor_name: str) -> str:
    tagged = getattr(service, "voxline_provider", None)
    if isinstance(tagged, str):
        return tagged
    name = processor_name.split("#")[0]
    return next((p for prefix, p in _BY_CLASS if name.startswith(prefix)), name)


def _add(usage: dict[str, float], key: str, amount: float) -> None:
    if amount:
        usage[key] = round(usage.get(key, 0.0) + amount, 3)


def add_usage(usage: dict[str, float], providers: dict[str, dict[str, Any]],
              frame: MetricsFrame, source: Any, served: dict[str, str] | None = None) -> None:
    """Add ``frame``'s usage; name the provider of each stage. ``served`` (stage ->
    provider) is who took a stage over after a failover: a late report from the
    provider it replaced still counts as usage but does not rename the stage."""
    realtime = getattr(source, "voxline_stage", None) == "realtime"
    for data in frame.data:
        if isinstance(data, LLMUsageMetricsData) and realtime:
            # A speech-to-speech model: priced by audio minutes (CallLog meters them);
            # its tokens are kept for reference, unpriced.
            stage = "realtime"
            _add(usage, "realtime_input_tokens", data.value.prompt_tokens)
            _add(usage, "realtime_output_tokens", data.value.completion_tokens)
        elif isinstance(data, LLMUsageMetricsData):
            tokens, stage = data.value, "llm"
            cached = tokens.cache_read_input_tokens or 0
            _add(usage, "llm_input_tokens", max(0, tokens.prompt_tokens - cached))
            _add(usage, "llm_cached_tokens", cached)
            _add(usage, "llm_output_tokens", tokens.completion_tokens)
        elif isinstance(data, STTUsageMetricsData):
            stage = "stt"
            _add(usage, "stt_audio_secs", data.value.audio_seconds)
        elif isinstance(data, TTSUsageMetricsData):
            stage = "tts"
            _add(usage, "tts_characters", data.value)
        else:
            continue
        provider = provider_of(source, data.processor)
        if served and stage in served and served[stage] != provider:
            continue
        providers.setdefault(stage, {}).update(provider=provider, model=data.model)

"""OpenAI: speech-to-text, chat (also any OpenAI-compatible server) and text-to-speech."""

from __future__ import annotations

import os
from functools import cache
from typing import Any

from voxline.errors import translate
from voxline.extras import require
from voxline.integrations.providers.common import (
    chosen,
    closing_client,
    describe,
    given,
    secret,
    silence_wav,
    tls_context,
)
from voxline.spec import LLMBlock, ProviderBlock, STTBlock, TTSBlock

OPENAI_TTS_RATE = 24000  # /audio/speech answers 24 kHz PCM whatever the pipeline's rate


def _openai() -> Any:
    return require("openai", "openai")


def _key(block: ProviderBlock) -> str:
    if block.provider == "openai_compatible":
        return os.environ.get("OPENAI_API_KEY", "none")
    return secret("OPENAI_API_KEY")


def build_stt(block: STTBlock, *, language: str, sample_rate: int | None = None) -> Any:
    _openai()
    from pipecat.services.openai.stt import OpenAISTTService

    return closing_client(OpenAISTTService)(
        api_key=_key(block), **given(block, "base_url"), sample_rate=sample_rate,
        settings=OpenAISTTService.Settings(**given(block, "model")), **block.options,
    )


@cache
def _llm_service() -> type:
    """Pipecat's OpenAILLMService whose HTTP client uses the process's TLS context.

    Pipecat builds an ``AsyncOpenAI`` client in the constructor, and its httpx client
    loads the CA bundle into a new TLS context: ~25 ms of CPU on the event loop for every
    call (eight calls starting together stalled the loop ~200 ms). The client is
    otherwise the one pipecat builds (same connection limits).
    """
    from openai import AsyncOpenAI, DefaultAsyncHttpxClient
    from pipecat.services.openai import llm
    from pipecat.utils.http import connection_limits

    # The same class name: logs, metrics and usage (processors/usage.py) name it as before.
    class OpenAILLMService(closing_client(llm.OpenAILLMService)):
        def create_client(self, api_key=None, base_url=None, organization=None, project=None,  # type: ignore[no-untyped-def]
                          default_headers=None, **kwargs):
            return AsyncOpenAI(
                api_key=api_key, base_url=base_url, organization=organization, project=project,
                http_client=DefaultAsyncHttpxClient(
                    verify=tls_context(),
                    limits=connection_limits(max_keepalive_connections=100, max_connections=1000,
                                             keepalive_expiry=None),
                ),
                default_headers=default_headers,
            )

    return OpenAILLMService


def build_llm(block: LLMBlock, *, max_tool_calls_per_turn: int) -> Any:
    _openai()
    from pipecat.services.openai.llm import OpenAILLMService

    return _llm_service()(
        api_key=_key(block), **given(block, "base_url"),
        settings=OpenAILLMService.Settings(**given(block, "model", "temperature", "max_tokens")),
    )


def build_tts(block: TTSBlock) -> Any:
    _openai()
    from pipecat.services.openai.tts import OpenAITTSService

    options = dict(block.options)
    # Pipecat labels the 24 kHz PCM with whatever rate it is given and does not
    # resample it; labelled correctly, the output transport resamples it to the line.
    options.setdefault("sample_rate", OPENAI_TTS_RATE)
    return closing_client(OpenAITTSService)(
        api_key=_key(block), **given(block, "base_url"),
        settings=OpenAITTSService.Settings(**given(block, "model", "voice")), **options,
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


# -- probes: the smallest real request on the path a turn uses ---------------------------
def _client(block: ProviderBlock) -> Any:
    openai = _openai()
    return openai.AsyncOpenAI(api_key=_key(block), base_url=block.base_url, max_retries=0)


async def probe_llm(block: LLMBlock) -> None:
    from pipecat.services.openai.llm import OpenAILLMService

    try:
        async with _client(block) as client:
            stream = await client.chat.completions.create(
                model=chosen(block, OpenAILLMService), max_tokens=1, stream=True,
                messages=[{"role": "user", "content": "Say OK."}])
            async for _ in stream:
                pass
    except Exception as e:
        raise translate(e, provider=block.provider) from e


async def probe_stt(block: STTBlock) -> None:
    from pipecat.services.openai.stt import OpenAISTTService

    try:
        async with _client(block) as client:
            await client.audio.transcriptions.create(
                model=chosen(block, OpenAISTTService), file=("probe.wav", silence_wav(), "audio/wav"))
    except Exception as e:
        raise translate(e, provider=block.provider) from e


async def probe_tts(block: TTSBlock) -> None:
    from pipecat.services.openai.tts import OpenAITTSService

    try:
        async with _client(block) as client, client.audio.speech.with_streaming_response.create(
                input="OK.", model=chosen(block, OpenAITTSService), voice=chosen(block, OpenAITTSService, "voice"),
                response_format="pcm") as response:
            async for _ in response.iter_bytes():
                pass
    except Exception as e:
        raise translate(e, provider=block.provider) from e


# -- realtime: speech to speech ---------------------------------------------------------
REALTIME_URL = "wss://api.openai.com/v1/realtime"


def realtime_url(block: ProviderBlock) -> str:
    """The Realtime websocket URL: ``base_url`` as given (``http(s)``/``ws(s)``), with
    ``/realtime`` after the API root when it names one (``.../v1``)."""
    from voxline.integrations.providers.common import ws_url

    if not block.base_url:
        return REALTIME_URL
    url = ws_url(block.base_url).rstrip("/")
    return url if url.endswith("/realtime") else f"{url}/realtime"


def build_realtime(block: ProviderBlock, *, max_tool_calls_per_turn: int, language: str = "en") -> Any:
    """OpenAI Realtime with voxline's turn-taking: the server's own VAD is off, so the
    pipeline's VAD and turn strategy decide when the caller's turn ends (commit, then
    ``response.create``) and an interruption sends ``response.cancel`` and truncates the
    answer to what was played. The caller's words are transcribed into the record."""
    _openai()
    from pipecat.services.openai.realtime import events
    from pipecat.services.openai.realtime.llm import OpenAIRealtimeLLMService

    options = dict(block.options)
    transcription = options.pop("transcription_model", None)
    audio = events.AudioConfiguration(
        input=events.AudioInput(
            transcription=events.InputAudioTranscription(**({"model": transcription} if transcription else {}),
                                                         language=language),
            turn_detection=False),
        output=events.AudioOutput(voice=block.voice) if block.voice else None,
    )
    service = OpenAIRealtimeLLMService(
        api_key=_key(block), base_url=realtime_url(block),
        settings=OpenAIRealtimeLLMService.Settings(
            **given(block, "model"), session_properties=events.SessionProperties(audio=audio)),
        **options,
    )
    service.voxline_stage = "realtime"  # its usage is priced as realtime audio minutes
    return service


def describe_realtime(block: ProviderBlock) -> str:
    from pipecat.services.openai.realtime.llm import OpenAIRealtimeLLMService

    return f"{describe(block, OpenAIRealtimeLLMService)}, voice {block.voice or 'service default'}"

"""ElevenLabs: streaming text-to-speech. Pipecat speaks its websocket API itself, so
there is no vendor SDK to guard."""

from __future__ import annotations

from typing import Any

from voxline.integrations.providers.common import describe, given, secret
from voxline.spec import TTSBlock


def build_tts(block: TTSBlock) -> Any:
    from pipecat.services.elevenlabs.tts import ElevenLabsTTSService

    url = given(block, "base_url").get("base_url")
    return ElevenLabsTTSService(
        api_key=secret("ELEVENLABS_API_KEY"), **({"url": url} if url else {}),
        settings=ElevenLabsTTSService.Settings(**given(block, "model", "voice")), **block.options,
    )


def describe_tts(block: TTSBlock) -> str:
    from pipecat.services.elevenlabs.tts import ElevenLabsTTSService

    return f"{describe(block, ElevenLabsTTSService)}, voice {describe(block, ElevenLabsTTSService, 'voice')}"

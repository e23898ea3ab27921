"""ElevenLabs: streaming text-to-speech. Pipecat speaks its websocket API itself, so
there is no vendor SDK to guard."""

from __future__ import annotations

from typing import Any

import aiohttp

from voxline.errors import ProviderError, translate
from voxline.integrations.providers.common import chosen, describe, given, http_url, secret, ws_url
from voxline.spec import TTSBlock

DEFAULT_URL = "wss://api.elevenlabs.io"


def build_tts(block: TTSBlock) -> Any:
    from pipecat.services.elevenlabs.tts import ElevenLabsTTSService

    url = given(block, "base_url").get("base_url")
    return ElevenLabsTTSService(
        api_key=secret("ELEVENLABS_API_KEY"), **({"url": ws_url(url).rstrip("/")} if url else {}),
        settings=ElevenLabsTTSService.Settings(**given(block, "model", "voice")), **block.options,
    )


def describe_tts(block: TTSBlock) -> str:
    from pipecat.services.elevenlabs.tts import ElevenLabsTTSService

    return f"{describe(block, ElevenLabsTTSService)}, voice {block.voice or 'not set (required)'}"


async def probe_tts(block: TTSBlock) -> None:
    """Two characters through the HTTP stream endpoint, read to the end."""
    from pipecat.services.elevenlabs.tts import ElevenLabsTTSService

    base = http_url(block.base_url or DEFAULT_URL).rstrip("/")
    url = f"{base}/v1/text-to-speech/{block.voice}/stream"
    body = {"text": "OK", "model_id": chosen(block, ElevenLabsTTSService)}
    try:
        async with aiohttp.ClientSession() as session, session.post(
                url, params={"output_format": "pcm_16000"}, json=body,
                headers={"xi-api-key": secret("ELEVENLABS_API_KEY")}) as response:
            if response.status >= 400:
                raise translate(None, f"HTTP {response.status}: {await response.text()}", provider="elevenlabs")
            async for _ in response.content.iter_chunked(4096):
                pass
    except ProviderError:
        raise
    except Exception as e:
        raise translate(e, provider="elevenlabs") from e

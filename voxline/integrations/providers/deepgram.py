"""Deepgram: streaming speech-to-text over its websocket API."""

from __future__ import annotations

import json
from typing import Any

import aiohttp

from voxline.errors import ProviderError, translate
from voxline.extras import require
from voxline.integrations.providers.common import chosen, describe, given, secret, ws_url
from voxline.spec import STTBlock

DEFAULT_URL = "wss://api.deepgram.com"


def build_stt(block: STTBlock, *, language: str, sample_rate: int | None = None) -> Any:
    require("deepgram", "deepgram")
    from pipecat.services.deepgram.stt import DeepgramSTTService

    return DeepgramSTTService(
        api_key=secret("DEEPGRAM_API_KEY"), **given(block, "base_url"), sample_rate=sample_rate,
        settings=DeepgramSTTService.Settings(**given(block, "model")), **block.options,
    )


def describe_stt(block: STTBlock) -> str:
    from pipecat.services.deepgram.stt import DeepgramSTTService

    return describe(block, DeepgramSTTService)


async def probe_stt(block: STTBlock) -> None:
    """Open a live session and close it at once: Deepgram answers CloseStream with its
    Metadata message. No audio is sent, so nothing is billed."""
    from pipecat.services.deepgram.stt import DeepgramSTTService

    url = f"{ws_url(block.base_url or DEFAULT_URL).rstrip('/')}/v1/listen"
    query = {"model": str(chosen(block, DeepgramSTTService)), "encoding": "linear16", "sample_rate": "16000"}
    headers = {"Authorization": f"Token {secret('DEEPGRAM_API_KEY')}"}
    try:
        async with aiohttp.ClientSession() as session, \
                session.ws_connect(url, params=query, headers=headers) as ws:
            await ws.send_str(json.dumps({"type": "CloseStream"}))
            async for msg in ws:
                if msg.type == aiohttp.WSMsgType.TEXT and json.loads(msg.data).get("type") == "Metadata":
                    return
            raise ProviderError(f"closed without Metadata ({ws.close_code})", retryable=True,
                                provider="deepgram", kind="connection")
    except ProviderError:
        raise
    except Exception as e:
        raise translate(e, provider="deepgram") from e

"""Deepgram: streaming speech-to-text over its websocket API."""

from __future__ import annotations

from typing import Any

from voxline.extras import require
from voxline.integrations.providers.common import describe, given, secret
from voxline.spec import STTBlock


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

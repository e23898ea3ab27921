"""Ending a call gives back what it took: RSS stays flat over many calls' services."""

from __future__ import annotations

import gc
import os

import pytest

from tests.providers.kit import librivox, phone_line, transcribe_in_pipeline
from voxline.integrations.providers.local import shared
from voxline.integrations.providers.local.smart_turn import SharedSmartTurnAnalyzerV3
from voxline.pipelines.builder import Services
from voxline.spec import parse_spec

SPEC = parse_spec({"name": "rss", "prompt": "Be brief."})
WARM_UP, CALLS = 5, 30


def rss_mb() -> float:
    gc.collect()
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


@pytest.mark.models
async def test_rss_is_flat_over_thirty_calls_of_services():
    await shared.apreload([SPEC])
    samples, rate, _ = librivox()[1]
    pcm = phone_line(samples[: rate * 3 // 2], rate)  # 1.5 s of a phone caller

    async def one_call() -> str:
        services = Services.from_spec(SPEC, sample_rate=8000)
        SharedSmartTurnAnalyzerV3()
        return await transcribe_in_pipeline(services.stt, pcm, 8000)

    for _ in range(WARM_UP):
        assert await one_call()
    start = rss_mb()
    for _ in range(CALLS):
        assert await one_call()
    growth = rss_mb() - start
    print(f"RSS {start:.0f} MB, +{growth:.1f} MB after {CALLS} calls")
    assert growth < 20, growth

"""Provider health is the worker's, not the call's; a lone cloud block retries like a list.

- A call that starts after another call found its primary down starts on the fallback:
  no caller of the new call waits for the dead provider, and it sees no request.
- One probe per worker brings the primary back, for the calls already running and the
  ones that start after.
- A lone cloud block (no list) is retried on a 5xx by voxline's bounded retries (the
  SDK's own are off): the caller hears the answer, the vendor saw exactly two requests.
"""

from __future__ import annotations

import asyncio
import time

import pytest

pytest.importorskip("openai", reason="needs the openai extra")
pytest.importorskip("anthropic", reason="needs the anthropic extra")

from tests.cloud.kit import ANSWER, KEYS, SAID, Vendors, agent, heal, run_call  # noqa: E402
from voxline.integrations.providers.failover.health import board, key_of  # noqa: E402
from voxline.pipelines.builder import Services  # noqa: E402
from voxline.spec import LLMBlock  # noqa: E402

FAST_PROBES = {"probe_interval_secs": 0.2, "probe_max_interval_secs": 0.4, "max_probes": 50}


@pytest.fixture(autouse=True)
def _keys(monkeypatch):
    for name, value in KEYS.items():
        monkeypatch.setenv(name, value)


async def _until(check, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def test_a_new_call_starts_on_the_fallback_and_one_probe_brings_the_primary_back(tmp_path):
    async with Vendors() as v:
        primary = v.block("openai", retry=FAST_PROBES)
        blocks = {"stt": v.block("deepgram"), "tts": v.block("elevenlabs"),
                  "llm": [primary, v.block("anthropic")]}
        spec = agent(**blocks)
        key = key_of("llm", LLMBlock(**primary))
        v.openai.faults.status = 500

        first = await run_call(spec, [SAID], db=tmp_path / "one.db")
        assert first.agent_turns[0]["providers"]["llm"]["provider"] == "anthropic"
        assert first.show["usage"]["failovers"] == 1
        assert not board().healthy(key)
        asked = len(v.openai.chat_requests)

        # The second call never asks the dead primary (only the worker's probe does) and
        # has nothing to fail over from.
        probes_before = len(v.openai.requests)
        second = await run_call(spec, [SAID], db=tmp_path / "two.db")
        turn = second.agent_turns[0]
        assert turn["text"] == ANSWER and turn["providers"]["llm"]["provider"] == "anthropic"
        assert "failovers" not in turn["usage"] and "failed_over_from" not in turn["providers"]["llm"]
        probe_requests = len(v.openai.requests) - probes_before
        call_requests = len(v.openai.chat_requests) - asked
        assert call_requests <= probe_requests  # what reached openai were the probe's

        # Healed: the one probe marks it healthy; the next call is served by it again.
        heal(v.openai)
        await _until(lambda: board().healthy(key))
        third = await run_call(spec, [SAID], db=tmp_path / "three.db")
        assert third.agent_turns[0]["providers"]["llm"]["provider"] == "openai"


async def test_a_lone_cloud_block_is_retried_by_voxline_not_the_sdk(tmp_path):
    async with Vendors() as v:
        spec = agent(stt=v.block("deepgram"), tts=v.block("elevenlabs"), llm=v.block("openai"))
        services = Services.from_spec(spec)
        assert hasattr(services.llm, "members") and len(services.llm.members) == 1  # a chain of one
        v.openai.faults.status, v.openai.faults.times = 503, 1
        call = await run_call(spec, [SAID], db=tmp_path / "calls.db", services=services)

    assert [t.agent_said for t in call.report.turns] == [ANSWER]
    assert len(v.openai.chat_requests) == 2  # the 503, then voxline's one retry (SDK retries off)
    assert call.agent_turns[0]["providers"]["llm"]["provider"] == "openai"


def test_a_lone_local_block_stays_a_bare_service():
    from voxline.integrations.providers.registry import wants_chain
    from voxline.spec import TTSBlock

    assert not wants_chain("tts", [TTSBlock(provider="espeak")])
    assert wants_chain("tts", [TTSBlock(provider="espeak", retry={"attempts": 3})])
    assert wants_chain("llm", [LLMBlock(provider="anthropic")])

"""Failover in whole calls: for each stage and each way a provider fails, the fallback
serves the turn, the caller hears the whole answer once, the failover is counted on the
stored turn and call, and the primary is probed and takes the next turn once it heals."""

from __future__ import annotations

import pytest

pytest.importorskip("openai", reason="needs the openai extra")
pytest.importorskip("anthropic", reason="needs the anthropic extra")
pytest.importorskip("deepgram", reason="needs the deepgram extra")

from tests.cloud.kit import (  # noqa: E402
    ANSWER,
    KEYS,
    SAID,
    Door,
    Vendors,
    agent,
    heal,
    run_call,
    wait_healthy,
)
from voxline.pipelines.builder import Services  # noqa: E402

# stage -> (primary, fallback); the other stages use providers whose fakes stay healthy.
CHAINS = {"stt": ("deepgram", "openai"), "llm": ("openai", "anthropic"), "tts": ("elevenlabs", "openai")}
OTHERS = {"stt": "deepgram", "llm": "openai", "tts": "elevenlabs"}
KINDS = ["hang", "500", "429", "stall", "refused"]


@pytest.fixture(autouse=True)
def _keys(monkeypatch):
    for name, value in KEYS.items():
        monkeypatch.setenv(name, value)


def _break(fake, kind: str) -> None:
    if kind == "hang":
        fake.faults.first_byte_delay = 30.0
    elif kind in ("500", "429"):
        fake.faults.status = int(kind)
    elif kind == "stall":
        fake.faults.stall_after_first_chunk = True


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("stage", list(CHAINS))
async def test_failover_and_take_back(stage, kind, tmp_path):
    primary, fallback = CHAINS[stage]
    # A stalled Deepgram stops after its first message: interim results make that the
    # first, so the stall comes before the final transcript.
    async with Vendors(deepgram_interims=stage == "stt" and kind == "stall") as v:
        fake = v.fake(primary)
        first = v.block(primary)
        door = None
        if kind == "refused":
            door = Door(fake.port)
            first["base_url"] = door.url("/v1" if primary == "openai" else "")
        else:
            _break(fake, kind)
        blocks = {s: v.block(p) for s, p in OTHERS.items()}
        blocks[stage] = [first, v.block(fallback)]
        spec = agent(**blocks)
        services = Services.from_spec(spec)
        chain = getattr(services, stage)

        async def heal_primary(_turn: int, _services: Services) -> None:
            heal(fake)
            v.deepgram.interim_every_ms = None  # the fake's interims would cut the next answer
            if door is not None:
                await door.open()
            await wait_healthy(chain)

        try:
            call = await run_call(spec, [SAID, SAID], db=tmp_path / "calls.db", services=services,
                                  between=heal_primary)
        finally:
            if door is not None:
                await door.close()

    broken, healed = call.agent_turns
    # The caller heard the whole answer, every word once, both times.
    assert [t.agent_said for t in call.report.turns] == [ANSWER, ANSWER]
    assert broken["text"] == healed["text"] == ANSWER
    # The fallback served the first turn, and the record says so.
    served = broken["providers"][stage]
    assert served["provider"] == fallback, broken["providers"]
    assert len(served["failed_over_from"]) == 1 and served["failed_over_from"][0].startswith(f"{primary}:")
    assert broken["usage"]["failovers"] == 1
    assert call.show["usage"]["failovers"] == 1
    assert f"{stage}={fallback}" in call.text and f"after {primary}" in call.text
    # Healed and probed, the primary took the next turn back.
    assert healed["providers"][stage]["provider"] == primary, healed["providers"]
    assert "failovers" not in healed["usage"]
    assert chain.failovers == 1

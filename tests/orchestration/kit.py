"""Helpers of the orchestration tests: agents on the fake OpenAI API, scripted words, voices
that remember what they said."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from pathlib import Path
from typing import Any

from pipecat.frames.frames import Frame

from tests.fakes.scripted import ScriptedSTT
from voxline.integrations.providers.local.espeak import EspeakTTSService
from voxline.integrations.providers.registry import build_llm
from voxline.pipelines.builder import Services
from voxline.spec import AgentSpec, load_spec

AGENTS = Path(__file__).parent / "agents"


class Voice(EspeakTTSService):
    """espeak-ng that notes every text it speaks, with its voice."""

    spoken: list[tuple[str, str]]

    def __init__(self, voice: str, spoken: list[tuple[str, str]]):
        super().__init__(voice=voice)
        self.spoken = spoken

    async def run_tts(self, text: str, context_id: str) -> AsyncGenerator[Frame, None]:
        self.spoken.append((self._voice, text))
        async for frame in super().run_tts(text, context_id):
            yield frame


def on_fake(spec: AgentSpec, url: str) -> AgentSpec:
    return spec.model_copy(update={"llm": spec.llm.model_copy(update={"base_url": f"{url}/v1"})})


def agents_on(url: str, *names: str) -> dict[str, AgentSpec]:
    return {n: on_fake(load_spec(AGENTS / n / "agent.yaml"), url) for n in names}


def factory(transcripts: list[str], spoken: list[tuple[str, str]]) -> Any:
    """``make_services(spec)`` for Team.build: one scripted STT for all, a voice per agent."""
    stt = ScriptedSTT(transcripts)

    def make(spec: AgentSpec) -> Services:
        return Services(stt=stt, llm=build_llm(spec.llm, max_tool_calls_per_turn=3),
                        tts=Voice(spec.tts.voice or "en-us", spoken))

    return make

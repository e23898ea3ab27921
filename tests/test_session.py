"""The call session's lifecycle: insertion points, the call-length limit, clean teardown."""

from __future__ import annotations

import asyncio
from pathlib import Path

from pipecat.frames.frames import Frame, TranscriptionFrame, TTSSpeakFrame, TTSTextFrame
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

from tests.fakes.openai_chat import FakeOpenAIChat, Reply
from tests.fakes.scripted import ScriptedSTT
from tests.fakes.twilio_loopback import serve
from voxline.integrations.providers.local.espeak import EspeakTTSService
from voxline.integrations.providers.registry import build_llm
from voxline.pipelines.builder import Extensions, Services
from voxline.pipelines.scenario import Scenario, Turn
from voxline.pipelines.session import TIME_LIMIT_SAY
from voxline.pipelines.simulate import Simulation
from voxline.spec import load_spec

AGENT = Path(__file__).parent / "agents" / "guard_agent.yaml"


class Seen(FrameProcessor):
    """Counts the frame types that pass an insertion point."""

    def __init__(self) -> None:
        super().__init__()
        self.types: set[type] = set()

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        self.types.add(type(frame))
        await self.push_frame(frame, direction)


async def test_insertion_points_limit_and_teardown(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    fake = FakeOpenAIChat(replies=[Reply(text="We open at noon.")])
    before_stt, before_llm, before_tts = Seen(), Seen(), Seen()
    tasks_before = set(asyncio.all_tasks())
    async with serve(fake.app()) as url:
        spec = load_spec(AGENT)
        spec = spec.model_copy(update={
            "llm": spec.llm.model_copy(update={"base_url": f"{url}/v1"}),
            "limits": spec.limits.model_copy(update={"max_call_secs": 9.0}),
        })
        services = Services(stt=ScriptedSTT(["When do you open?"]),
                            llm=build_llm(spec.llm, max_tool_calls_per_turn=2),
                            tts=EspeakTTSService())
        scenario = Scenario(agent=AGENT, answer_timeout_secs=20,
                            turns=[Turn(say="When do you open?"), Turn(silence=8)])
        sim = Simulation(scenario, spec=spec, services=services, listen=False,
                         session_kwargs={"extensions": Extensions(
                             before_stt=[before_stt], before_llm=[before_llm], before_tts=[before_tts])})
        report = await sim.run()

    assert "noon" in report.turns[0].agent_said
    assert TranscriptionFrame in before_llm.types and TranscriptionFrame not in before_stt.types
    assert TTSSpeakFrame in before_tts.types or TTSTextFrame in before_tts.types
    assert report.end_reason == "max_duration"
    assert TIME_LIMIT_SAY.split(".")[0] in report.turns[1].agent_said
    await asyncio.sleep(0.1)
    leftover = [t for t in asyncio.all_tasks() - tasks_before if not t.done()
                and t is not asyncio.current_task()]
    assert leftover == [], leftover

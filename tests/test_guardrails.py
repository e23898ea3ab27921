"""Tools and LLMs that misbehave: the caller always hears something sensible and the
call goes on. Real VAD, real caller audio, real espeak TTS and Pipecat's real OpenAI
service talking to a fake OpenAI server on loopback; only the transcripts are scripted.
"""

from __future__ import annotations

from pathlib import Path

from tests.fakes.openai_chat import FakeOpenAIChat, Reply
from tests.fakes.scripted import ScriptedSTT
from tests.fakes.twilio_loopback import serve
from voxline.integrations.providers.local.espeak import EspeakTTSService
from voxline.integrations.providers.registry import build_llm
from voxline.integrations.tools.runtime import UNKNOWN_TOOL_SAY
from voxline.pipelines.builder import Services
from voxline.pipelines.scenario import Scenario, Turn
from voxline.pipelines.simulate import Report, Simulation
from voxline.spec import AgentSpec, load_spec

AGENT = Path(__file__).parent / "agents" / "guard_agent.yaml"


def _with_llm_url(spec: AgentSpec, url: str) -> AgentSpec:
    return spec.model_copy(update={"llm": spec.llm.model_copy(update={"base_url": url})})


async def _call(spec: AgentSpec, transcripts: list[str]) -> Report:
    services = Services(
        stt=ScriptedSTT(transcripts),
        llm=build_llm(spec.llm, max_tool_calls_per_turn=spec.limits.max_tool_calls_per_turn),
        tts=EspeakTTSService(),
    )
    scenario = Scenario(agent=AGENT, turns=[Turn(say=t) for t in transcripts],
                        answer_timeout_secs=20)
    return await Simulation(scenario, spec=spec, services=services, listen=False).run()


async def test_failing_tools_and_bad_tool_calls_are_answered(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    fake = FakeOpenAIChat(replies=[
        Reply(tool="broken", arguments='{"order_id": 7}'),         # raises
        Reply(tool="slow", arguments='{"order_id": 7}'),           # times out
        Reply(tool="launch_rockets", arguments="{}"),              # not a tool
        Reply(tool="lookup", arguments='{"order_id": "seven"}'),   # wrong type
        Reply(tool="lookup", arguments='{"order_id": 7'),          # not JSON
        Reply(tool="lookup", arguments='{"order_id": 7}'),         # works...
        Reply(text="Order seven has shipped."),                    # ...and is spoken
    ])
    async with serve(fake.app()) as url:
        spec = _with_llm_url(load_spec(AGENT), f"{url}/v1")
        report = await _call(spec, [
            "Where is order 7?", "Try again please.", "Launch the rockets.",
            "Order seven.", "Order 7 again.", "Order 7, last try.",
        ])

    said = [t.agent_said for t in report.turns]
    assert "order system is not answering" in said[0]
    assert "broken" in [c["name"] for c in report.turns[0].tool_calls]
    assert "down" in report.turns[0].tool_calls[0]["error"]

    assert "taking too long" in said[1]
    assert "timed out" in report.turns[1].tool_calls[0]["error"]

    assert UNKNOWN_TOOL_SAY.rstrip(".") in said[2]
    assert report.turns[2].tool_calls[0]["error"] == "unknown tool"

    assert "couldn't do that" in said[3]
    assert "invalid arguments" in report.turns[3].tool_calls[0]["error"]

    assert spec.fallback.split(".")[0] in said[4]  # the malformed call was dropped: fallback

    assert "shipped" in said[5]
    assert report.turns[5].tool_calls[0]["result"] == {"order_id": 7, "status": "shipped"}
    assert report.end_reason == "caller_hangup"
    # The model saw the working tool's result before answering.
    assert any(m.get("role") == "tool" for m in fake.requests[-1]["messages"])


async def test_dead_llm_provider_gets_a_fallback_and_the_call_goes_on(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    spec = _with_llm_url(load_spec(AGENT), "http://127.0.0.1:9/v1")  # nothing listens there
    report = await _call(spec, ["Hello, is anybody there?", "Hello again, can you hear me?"])
    assert len(report.turns) == 2
    for turn in report.turns:
        assert spec.fallback.split(".")[0] in turn.agent_said
    assert report.end_reason == "caller_hangup"

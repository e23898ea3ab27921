"""tool_choice per agent: none advertises no tools, required asks the provider for a call."""

from __future__ import annotations

import pytest
from pipecat.adapters.llm.schemas.function_schema import FunctionSchema
from pipecat.adapters.llm.schemas.tools_schema import ToolsSchema
from pipecat.processors.aggregators.llm_context import NOT_GIVEN, LLMContext

from voxline.orchestration.handoff import apply_tool_choice
from voxline.spec import parse_spec


def _context() -> LLMContext:
    return LLMContext(messages=[], tools=ToolsSchema(standard_tools=[
        FunctionSchema(name="lookup", description="", properties={}, required=[])]))


def test_tool_choice_none_and_required():
    context = _context()
    apply_tool_choice(context, "none")
    assert context.tools is NOT_GIVEN and context.tool_choice is NOT_GIVEN
    context = _context()
    apply_tool_choice(context, "required")
    assert context.tool_choice == "required"
    assert parse_spec({"name": "a", "prompt": "x", "tool_choice": "required"}).tool_choice == "required"


def _agent(choice: str):
    from tests.orchestration.kit import AGENTS

    return parse_spec({
        "name": "hours", "prompt": "You are Luigi's receptionist. Answer in one short sentence.",
        "llm": {"provider": "llama", "temperature": 0, "max_tokens": 30}, "tts": {"provider": "espeak"},
        "turn": {"strategy": "silence", "stop_secs": 0.3}, "vad": {"stop_secs": 0.2},
        "tools": [{"name": "opening_hours", "handler": "../tools.py:opening_hours"}],
        "tool_choice": choice, "idle": {"reprompt_after_secs": 30}}, base_dir=AGENTS / "front-desk")


@pytest.mark.models
@pytest.mark.parametrize("choice", ["required", "none"])
async def test_an_agents_tool_choice_on_the_real_local_model(choice):
    """The agent's tool_choice reaches the local llama.cpp model through Pipecat's context:
    required calls a tool even for "hello" (then speaks its result), none never does."""
    from tests.fakes.scripted import ScriptedSTT
    from voxline.integrations.providers.local import shared
    from voxline.pipelines.builder import Services
    from voxline.pipelines.scenario import Expect, Scenario, Turn
    from voxline.pipelines.simulate import Simulation

    spec = _agent(choice)
    await shared.apreload([spec])  # loaded before the call, as a server does at startup
    real = Services.from_spec(spec)
    expect = Expect(tool_called="opening_hours") if choice == "required" else Expect(no_tool_called=True)
    # A behaviour test: a generous answer timeout, so a machine busy with other tests
    # (both of its cores) does not fail it.
    scenario = Scenario(agent=spec.base_dir / "agent.yaml", answer_timeout_secs=120,
                        turns=[Turn(say="Hello!", expect=expect)])
    sim = Simulation(scenario, spec=spec, listen=False,
                     services=Services(stt=ScriptedSTT(["Hello!"]), llm=real.llm, tts=real.tts))
    report = await sim.run()
    assert report.passed, report.failures
    assert report.turns[0].agent_said  # and the caller still hears an answer

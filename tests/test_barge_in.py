"""A caller who cuts in between two of the agent's sentences has interrupted it.

The agent's first sentence is heard as soon as it is written (not when the next clause
is), and while the model stalls on the next one the output transport reports the bot
as stopped; the answer is not over, so the turn is recorded as interrupted. Real
Whisper, VAD and audio; the model is a vendor fake on loopback that stalls after its
first sentence.
"""

from __future__ import annotations

from pathlib import Path

from tests.fakes.openai_chat import FakeOpenAIChat, Reply
from tests.fakes.twilio_loopback import serve
from voxline.pipelines.scenario import Scenario, Turn
from voxline.pipelines.simulate import Simulation
from voxline.spec import load_spec

AGENT = Path(__file__).parent / "agents" / "guard_agent.yaml"


async def test_a_caller_cutting_in_between_sentences_interrupts_the_answer(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    fake = FakeOpenAIChat(replies=[
        Reply(text="Sure. Your order left our warehouse this morning and arrives on Friday.",
              pause_after_sentence=9.0),
        Reply(text="We have a vegetarian menu."),
        Reply(text="You are welcome."),
    ])
    async with serve(fake.app()) as url:
        spec = load_spec(AGENT)
        spec = spec.model_copy(update={"llm": spec.llm.model_copy(update={"base_url": f"{url}/v1"})})
        scenario = Scenario(agent=AGENT, answer_timeout_secs=30, turns=[
            Turn(say="Where is my order?"),
            # Pipecat reports the bot stopped ~3 s after the last audio of a stalled answer.
            Turn(barge_in="Wait, do you have a vegetarian menu?", barge_in_after_secs=4.5),
            Turn(say="Thank you very much."),
        ])
        report = await Simulation(scenario, spec=spec, listen=False).run()

    first, cut, after = report.turns
    assert first.agent_said == "Sure.", first  # heard before the model went on
    assert "warehouse" not in first.agent_said  # the rest was never played
    assert first.interrupted, first
    assert "vegetarian" in cut.agent_heard.lower(), cut
    assert not cut.interrupted and not after.interrupted, (cut, after)  # answers heard whole
    assert report.passed, report.failures

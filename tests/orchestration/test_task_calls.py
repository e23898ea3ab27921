"""A task call end to end, both sides simulated on loopback: the concierge's caller asks,
the concierge places a call with the booker agent, a scripted restaurant answers, the
booker reports the outcome, and the concierge tells its caller."""

from __future__ import annotations

import json

from tests.fakes.openai_chat import FakeOpenAIChat, Reply
from tests.fakes.scripted import ScriptedSTT
from tests.fakes.twilio_loopback import serve
from tests.orchestration.kit import AGENTS, Voice, on_fake
from voxline.integrations.providers.registry import build_llm
from voxline.orchestration.tasks import LoopbackDialer, ScriptedCallee
from voxline.pipelines.builder import Services
from voxline.pipelines.scenario import Expect, Scenario, Turn
from voxline.pipelines.simulate import Simulation
from voxline.spec import load_spec

ASK = "Please book Luigis for four on Friday at eight under Tom"
RESTAURANT = ["Luigis, how can I help", "Yes we have that, your confirmation is four four one seven"]


async def test_the_concierge_books_by_phone_and_reports_back(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    task = "Book a table for four on Friday at 8 pm under the name Tom."
    fake = FakeOpenAIChat(replies=[
        Reply(tool="call_task", arguments=json.dumps({"place": "luigis", "task": task})),  # concierge
        Reply(text="Hello, I'd like a table for four on Friday at eight, under Tom."),  # booker
        Reply(tool="report_outcome", arguments=json.dumps(
            {"status": "done", "confirmation": "4417", "details": "four on Friday at 8 pm"})),
        Reply(text="You're booked at Luigi's, confirmation four four one seven."),  # concierge
    ])
    spoken: list[tuple[str, str]] = []
    async with serve(fake.app()) as url:
        concierge = on_fake(load_spec(AGENTS / "concierge" / "agent.yaml"), url)
        booker_services = lambda spec: Services(  # noqa: E731
            stt=ScriptedSTT(list(RESTAURANT)), llm=build_llm(on_fake(spec, url).llm, max_tool_calls_per_turn=2),
            tts=Voice("en-gb", spoken))
        dialer = LoopbackDialer({"+15550003333": lambda: ScriptedCallee(list(RESTAURANT))},
                                services=booker_services)
        scenario = Scenario(agent=AGENTS / "concierge" / "agent.yaml", answer_timeout_secs=60, turns=[
            Turn(say=ASK, expect=Expect(tool_called="call_task", says_any=["confirmation"]))])
        services = Services(stt=ScriptedSTT([ASK]), llm=build_llm(concierge.llm, max_tool_calls_per_turn=2),
                            tts=Voice("en-us", spoken))
        sim = Simulation(scenario, spec=concierge, services=services, listen=False)
        sim.session.dialer = dialer
        report = await sim.run()
    assert report.passed, report.failures
    call = report.turns[0].tool_calls[0]
    assert call["result"] == {"place": "luigis", "status": "done", "confirmation": "4417",
                              "details": "four on Friday at 8 pm"}
    [placed] = dialer.calls
    assert placed["to"] == "+15550003333" and placed["end_reason"] == "task_reported"
    # The booker had the task in its prompt and heard the restaurant.
    booker_request = fake.requests[1]
    assert task in booker_request["messages"][0]["content"]
    assert RESTAURANT[0] in json.dumps(booker_request["messages"])
    assert ("en-gb", "Hello, I'd like a table for four on Friday at eight, under Tom.") in spoken

"""Handoff between agents: the prompt, tools, voice and LLM switch; the conversation carries
over; the new agent answers the same turn; every turn names who answered."""

from __future__ import annotations

import json

import pytest

from tests.fakes.openai_chat import FakeOpenAIChat, Reply
from tests.fakes.twilio_loopback import serve
from tests.orchestration.kit import AGENTS, agents_on, factory
from voxline.errors import SpecError
from voxline.orchestration.handoff import Team, carry_full, carry_summary, team_members
from voxline.pipelines.scenario import Expect, Scenario, Turn
from voxline.pipelines.simulate import Simulation
from voxline.spec import load_spec, parse_spec

BOOK = "Please book a table for two at seven for Anna"


def _system(request: dict) -> str:
    return request["messages"][0]["content"]


def _tools(request: dict) -> list[str]:
    return [t["function"]["name"] for t in request.get("tools") or []]


async def test_a_handoff_switches_agent_and_the_new_agent_answers_the_same_turn(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    fake = FakeOpenAIChat(replies=[
        Reply(tool="transfer_to_bookings"),  # front desk
        Reply(tool="book_table", arguments=json.dumps({"name": "Anna", "party_size": 2, "time": "7 pm"})),
        Reply(text="You're booked, Anna: two at seven."),  # bookings, after its tool
        Reply(text="Anything else?"),
    ])
    spoken: list[tuple[str, str]] = []
    async with serve(fake.app()) as url:
        agents = agents_on(url, "front-desk", "bookings")
        team = Team.build(agents["front-desk"], agents, factory([BOOK, "Thanks."], spoken))
        scenario = Scenario(agent=AGENTS / "front-desk" / "agent.yaml", answer_timeout_secs=20, turns=[
            Turn(say=BOOK, expect=Expect(agent="bookings", tool_called="book_table", says_any=["booked"])),
            Turn(say="Thanks.", expect=Expect(agent="bookings")),
        ])
        sim = Simulation(scenario, spec=agents["front-desk"], listen=False, session_kwargs={"team": team})
        report = await sim.run()

    assert report.passed, report.failures
    first = report.turns[0]
    assert first.agent == "bookings"
    assert [c["name"] for c in first.tool_calls] == ["transfer_to_bookings", "book_table"]
    # The front desk was asked with its own prompt and choices; bookings with its own.
    assert "front desk" in _system(fake.requests[0])
    assert "transfer_to_bookings" in _tools(fake.requests[0]) and "book_table" not in _tools(fake.requests[0])
    assert "bookings desk" in _system(fake.requests[1])
    assert _tools(fake.requests[1]) == ["book_table"]  # one handoff per caller turn: no ping-pong
    assert _tools(fake.requests[3]) == ["book_table", "transfer_to_front_desk"]  # the next turn
    # Bookings saw what the caller said (not asked again), not the handoff choice itself.
    carried = fake.requests[1]["messages"]
    assert carried[-1] == {"role": "user", "content": BOOK}
    assert not any("transfer_to" in json.dumps(m) for m in carried[1:])
    # The bridge in the front desk's voice, the answer in bookings' voice.
    assert ("en-us", "I'll pass you to our bookings desk.") in spoken
    assert any(v == "en-gb" and "booked" in t for v, t in spoken)
    assert not any(v == "en-us" and "booked" in t for v, t in spoken)
    # Every turn of the record names the agent that answered.
    assert [t.agent for t in sim.session.log.turns] == ["front-desk", "bookings", "bookings"]


def test_carrying_the_conversation():
    conversation = [
        {"role": "user", "content": "When do you open?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "opening_hours", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": '{"open": "noon"}'},
        {"role": "assistant", "content": "We open at noon."},
        {"role": "user", "content": BOOK},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c2", "type": "function", "function": {"name": "transfer_to_bookings", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "c2", "content": '{"handed_to": "bookings"}'},
    ]
    full = carry_full(conversation)
    assert full == conversation[:5]
    summary = carry_summary(conversation, "front-desk")
    assert summary[-1] == {"role": "user", "content": BOOK}
    assert len(summary) == 2
    text = summary[0]["content"]
    assert "front-desk" in text and "When do you open?" in text and "noon" in text and "transfer" not in text


def test_handoffs_name_sibling_agents():
    spec = load_spec(AGENTS / "front-desk" / "agent.yaml")
    members = team_members(spec, {"front-desk": spec, "bookings": load_spec(AGENTS / "bookings" / "agent.yaml")})
    assert set(members) == {"front-desk", "bookings"}
    with pytest.raises(SpecError, match="no agent 'bookings'"):
        team_members(spec, {"front-desk": spec})
    with pytest.raises(SpecError, match="itself"):
        parse_spec({"name": "a", "prompt": "x", "handoffs": [{"agent": "a", "when": "always"}]})
    with pytest.raises(SpecError, match="more than one handoff"):
        parse_spec({"name": "a", "prompt": "x", "handoffs": [{"agent": "b", "when": "x"}, {"agent": "b", "when": "y"}]})

"""Grounded answers: a model that lies about bookings, or repeats its few-shot examples as
fact, is corrected before the caller hears it, and the event is in the call's record.

The lying model is a fake OpenAI server on loopback behind Pipecat's real OpenAI
service (``llm: {provider: openai_compatible}``), in a real CallSession with real VAD
and espeak; then the same through ``voxline simulate --json`` and the stored call; then
the local llama.cpp model on the restaurant agent.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import pytest
import yaml

from tests.fakes.openai_chat import FakeOpenAIChat, Reply
from tests.fakes.scripted import ScriptedSTT
from tests.fakes.twilio_loopback import serve
from voxline.integrations.providers.local.espeak import EspeakTTSService
from voxline.integrations.providers.registry import build_llm
from voxline.pipelines.builder import Services
from voxline.pipelines.scenario import Scenario, Turn
from voxline.pipelines.simulate import Report, Simulation
from voxline.processors.call_log import CallLog, ToolCallRecord
from voxline.processors.grounding import DEFAULT_CORRECTIONS, GUARDRAIL, GroundingChecker
from voxline.spec import AgentSpec, LLMBlock, load_spec

ROOT = Path(__file__).resolve().parents[1]
RESTAURANT = ROOT / "examples" / "restaurant" / "agent.yaml"


def _spec(**llm: object) -> AgentSpec:
    spec = load_spec(RESTAURANT)
    return spec.model_copy(update={"llm": LLMBlock(**llm)} if llm else {})


# --- the checker, sentence by sentence ---------------------------------------------------

async def _checker(said: str) -> tuple[GroundingChecker, CallLog]:
    log = CallLog()
    await log.user_turn(said)
    return GroundingChecker(_spec(), log), log


async def test_claims_need_a_tool_of_their_kind_this_turn():
    checker, log = await _checker("I want to book a table.")
    assert checker.claim("You're booked: a table for four on Friday at 8 pm.").kind == "book"
    assert checker.claim("Done, your booking is cancelled.").kind == "cancel"
    assert checker.claim("I've sent you the details.").kind == "send"
    # Questions, offers and negations claim nothing.
    for sentence in ("Would you like me to get that booked?", "I haven't booked anything yet.",
                     "Once it's booked you'll get a text.", "Sure! For how many people?"):
        assert checker.claim(sentence) is None, sentence
    log.tool_call(ToolCallRecord("find_restaurants", {"cuisine": ""}, [{"name": "El Mercado"}]))
    assert checker.claim("You're booked.") is not None  # a lookup books nothing
    log.tool_call(ToolCallRecord("book_table", {"name": "Anna", "party_size": 2, "day": "tomorrow",
                                                "time": "7 pm"}, {"booked": True, "id": "x1"}))
    assert checker.claim("You're booked, Anna, for two tomorrow at seven.") is None
    # A later turn may repeat that booking, with its details, but not invent another.
    await log.user_turn("So is it booked?")
    assert checker.claim("Yes, you're booked for two tomorrow at 7 pm.") is None
    assert checker.claim("Yes, you're booked for Friday at nine.").kind == "book"


async def test_a_tool_whose_result_says_no_does_not_support_the_claim():
    checker, log = await _checker("Cancel the booking for Henrik Larsen.")
    log.tool_call(ToolCallRecord("cancel_booking", {"name": "Henrik Larsen"}, {"cancelled": 0, "bookings": []}))
    assert checker.claim("Done, your booking is cancelled.").kind == "failed"
    log.tool_call(ToolCallRecord("book_table", {"name": "x"}, None, error="ValueError: too many"))
    assert checker.claim("You're booked.").kind == "book"  # a failed call performed nothing


async def test_example_content_is_not_stated_as_fact():
    checker, _ = await _checker("I want to book a table.")
    assert "tom" in checker.facts.entities and "sakura house" in checker.facts.entities
    assert checker.example("Sure, Tom, for how many people?").rewrite == "Sure, for how many people?"
    assert checker.example("Goodbye, Tom!").rewrite == "Goodbye!"
    assert checker.example("The booking under Tom is for Friday.").kind == "example"
    assert checker.example("Sakura House, by the riverside, serves Japanese food.").kind == "example"
    assert checker.example("Luigi's Trattoria is downtown.") is None  # the prompt says so
    checker2, log = await _checker("My name is Tom, a table on Friday please.")
    assert checker2.example("Sure, Tom, a table on Friday.") is None  # the caller said it


async def test_the_spec_names_corrections_and_action_tools():
    spec = _spec()
    spec = spec.model_copy(update={"guardrails": spec.guardrails.model_copy(update={
        "corrections": {"book": "Not booked yet."}, "actions": {"book": ["find_restaurants"]}})})
    log = CallLog()
    await log.user_turn("Book it.")
    checker = GroundingChecker(spec, log)
    assert checker.corrections["book"] == "Not booked yet."
    log.tool_call(ToolCallRecord("find_restaurants", {}, {"ok": True}))
    assert checker.claim("You're booked.") is None


# --- a lying model in a real call ----------------------------------------------------------

LIES = [
    Reply(text="You're booked, Tom: a table for four on Friday at 8 pm."),   # no tool, example words
    Reply(tool="book_table", arguments='{"name": "Anna", "party_size": 2, "day": "tomorrow", "time": "7 pm"}'),
    Reply(text="You're booked, Anna: a table for two tomorrow at 7 pm."),     # true
    Reply(text="Done, Henrik, your booking is cancelled."),                  # no tool
    Reply(tool="cancel_booking", arguments='{"name": "Bob"}'),
    Reply(text="Done, your booking is cancelled."),                          # the tool found none
    Reply(text="You're welcome, Tom! Would you like me to get anything else booked?"),
]
SAID = ["I want to book a table.", "Two people tomorrow at seven, the name is Anna.",
        "Please cancel my reservation, the name is Henrik.", "Cancel the one for Bob too.",
        "Thanks a lot."]


async def _lying_call(url: str, tmp_path: Path) -> Report:
    spec = _spec(provider="openai_compatible", base_url=url, model="fake-model")
    services = Services(stt=ScriptedSTT(list(SAID)), tts=EspeakTTSService(),
                        llm=build_llm(spec.llm, max_tool_calls_per_turn=2))
    scenario = Scenario(agent=RESTAURANT, turns=[Turn(say=s) for s in SAID], answer_timeout_secs=20)
    return await Simulation(scenario, spec=spec, services=services, listen=False).run()


def _events(turn) -> list[dict]:
    return [c for c in turn.tool_calls if c["name"] == GUARDRAIL]


async def test_a_lying_model_is_corrected_in_a_call(monkeypatch, tmp_path):
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    monkeypatch.setenv("RESTAURANT_BOOKINGS", str(tmp_path / "bookings.json"))
    fake = FakeOpenAIChat(replies=list(LIES))
    async with serve(fake.app()) as url:
        report = await _lying_call(f"{url}/v1", tmp_path)
    said = [t.agent_said for t in report.turns]
    assert len(said) == 5, said

    assert "booked, Tom" not in said[0] and "Tom" not in said[0]
    assert load_spec(RESTAURANT).guardrails.corrections["book"] in said[0]
    assert _events(report.turns[0])[0]["arguments"]["kind"] == "book"

    assert "booked, Anna" in said[1] and not _events(report.turns[1])  # a true claim passes

    assert "cancelled anything yet" in said[2] and _events(report.turns[2])[0]["arguments"]["kind"] == "cancel"

    assert DEFAULT_CORRECTIONS["failed_cancel"] in said[3]
    assert [c["name"] for c in report.turns[3].tool_calls] == ["cancel_booking", GUARDRAIL]

    assert "Tom" not in said[4] and said[4].startswith("You're welcome!")  # the name is left out
    assert "anything else booked?" in said[4]  # a question claims nothing
    # What the model is told next is what the caller heard, not the lie.
    history = json.dumps(fake.requests[-1]["messages"][-6:])
    assert "booked, Tom" not in history


# --- the same through `voxline simulate --json` and the stored call ------------------------

async def _run(*args: str, cwd: Path, env: dict[str, str]) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "voxline.cli", *args, cwd=cwd, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    return proc.returncode or 0, out.decode(), err.decode()


@pytest.mark.models
async def test_simulate_json_and_the_stored_call_show_the_correction(tmp_path):
    fake = FakeOpenAIChat(replies=[Reply(text="You're booked, Tom: a table for four on Friday at 8 pm.")])
    agent = yaml.safe_load(RESTAURANT.read_text())
    async with serve(fake.app()) as url:
        agent["llm"] = {"provider": "openai_compatible", "base_url": f"{url}/v1", "model": "fake"}
        agent["tts"] = {"provider": "espeak"}
        agent["tools"] = [{**t, "handler": t["handler"].replace("tools.py", str(RESTAURANT.parent / "tools.py"))}
                          for t in agent["tools"]]
        (tmp_path / "agent.yaml").write_text(yaml.safe_dump(agent))
        (tmp_path / "scenario.yaml").write_text(yaml.safe_dump({
            "agent": "agent.yaml", "answer_timeout_secs": 20, "turns": [
                {"say": "I would like to book a table.",
                 "expect": {"no_tool_called": True, "says_none": ["Tom", "Friday"]}}]}))
        env = {**os.environ, "OPENAI_API_KEY": "test", "DATABASE_URL": f"sqlite:///{tmp_path / 'calls.db'}",
               "RESTAURANT_BOOKINGS": str(tmp_path / "bookings.json")}
        code, out, err = await _run("simulate", "--json", str(tmp_path / "scenario.yaml"), cwd=tmp_path, env=env)
    assert code == 0, (out, err[-2000:])
    report = json.loads(out)
    turn = report["turns"][0]
    assert "Tom" not in turn["agent_said"] and "Tom" not in turn["caller_heard"]
    assert [c["name"] for c in turn["tool_calls"]] == [GUARDRAIL]

    code, out, err = await _run("calls", "list", "--json", cwd=tmp_path, env=env)
    assert code == 0, err
    call_id = json.loads(out)[0]["id"]
    code, out, err = await _run("calls", "show", call_id, "--json", cwd=tmp_path, env=env)
    assert code == 0, err
    stored = json.dumps(json.loads(out))
    assert GUARDRAIL in stored and "booked, Tom" in stored  # what was blocked, for review


# --- the local model ---------------------------------------------------------------------

@pytest.mark.models
async def test_the_local_model_never_books_without_the_tool(monkeypatch, tmp_path):
    monkeypatch.setenv("RESTAURANT_BOOKINGS", str(tmp_path / "bookings.json"))
    spec = load_spec(RESTAURANT)
    said = ["I want to book a table.", "Actually, please cancel that booking.", "Thank you, that is all."]
    services = Services(stt=ScriptedSTT(list(said)), tts=EspeakTTSService(),
                        llm=build_llm(spec.llm, max_tool_calls_per_turn=2))
    scenario = Scenario(agent=RESTAURANT, turns=[Turn(say=s) for s in said], answer_timeout_secs=40)
    report = await Simulation(scenario, spec=spec, services=services, listen=False).run()
    for turn in report.turns:
        tools = [c["name"] for c in turn.tool_calls if not c["name"].startswith("guardrail:")]
        assert "Tom" not in turn.agent_said, turn
        if "book_table" not in tools:
            assert "booked" not in turn.agent_said.lower().replace("booked anything yet", ""), turn


# --- tool arguments from the local model ------------------------------------------------

BOOK_SCHEMA = {"type": "object", "required": ["name", "party_size", "day", "time"], "properties": {
    "name": {"type": "string"}, "party_size": {"type": "integer"}, "day": {"type": "string"},
    "time": {"type": "string"}, "restaurant": {"type": "string"}}}


def test_arguments_are_checked_against_the_schema():
    from voxline.integrations.providers.local.llama_arguments import parse_arguments

    good = '{"name": "Ben", "party_size": 2, "day": "tomorrow", "time": "9 pm"}}\n</tool_call>'
    assert parse_arguments(good, BOOK_SCHEMA) == {"name": "Ben", "party_size": 2, "day": "tomorrow", "time": "9 pm"}
    assert parse_arguments('{"name": "Ben", "party_size": "two", "day": "x", "time": "y"}', BOOK_SCHEMA) is None
    assert parse_arguments('{"name": "Ben"}', BOOK_SCHEMA) is None  # required ones missing
    assert parse_arguments('{"name": "Ben", "party_size": 2, "day": "x", "time": "y", "vip": true}',
                           BOOK_SCHEMA) is None
    assert parse_arguments('{"name": "Ben", ', BOOK_SCHEMA) is None


def test_required_arguments_the_caller_never_said_are_asked_for():
    from voxline.integrations.providers.local.llama_arguments import ask_for, respell, ungrounded

    said = "I'd like a table for five on Friday evening at seven."
    invented = {"name": "John", "party_size": 5, "day": "friday", "time": "7 pm"}
    assert ungrounded(invented, BOOK_SCHEMA, said) == ["name"]
    assert ask_for(["name"]) == "Sure. Could you tell me the name, please?"
    assert ask_for(["day", "time"]) == "Sure. Could you tell me the day and the time, please?"
    assert ungrounded({"name": "Nina", "party_size": 2, "day": "tomorrow evening", "time": "7:30 pm"},
                      BOOK_SCHEMA, "Two at half past seven tomorrow evening for Nina.") == []
    assert ungrounded({"name": "Sofia", "party_size": 4, "day": "next tuesday", "time": "7 pm"},
                      BOOK_SCHEMA, "I'd like a table for four next Tuesday at 7pm. named Sofia.") == []
    spelled = respell({"name": "Kawski, K-O-W-A-L-S-K-I", "party_size": 3, "day": "tomorrow", "time": "8 pm"})
    assert ungrounded(spelled, BOOK_SCHEMA, "Three tomorrow at 8 under Kawski, K-O-W-A-L-S-K-I.") == []
    assert respell({"name": "Kawski, K-O-W-A-L-S-K-I"}) == {"name": "Kowalski"}
    assert respell({"name": "Priya, P R I Y A"}) == {"name": "Priya"}


async def test_an_example_name_in_a_goodbye_the_model_wrote_is_left_out():
    checker, log = await _checker("That's all, goodbye!")
    log.tool_call(ToolCallRecord("end_call", {"goodbye": "Goodbye, Tom!"}, "ended"))
    assert checker.example("Goodbye, Tom!").rewrite == "Goodbye!"

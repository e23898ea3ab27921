"""engine: realtime — OpenAI Realtime as the agent's speech-to-speech model, through
Pipecat's OpenAIRealtimeLLMService against a fake of the GA Realtime websocket: the
caller's audio in, the model's audio out, tools, barge-in (``response.cancel`` and the
answer truncated to what was played), both sides' words and the audio minutes in the
call record."""

from __future__ import annotations

import pytest

pytest.importorskip("openai", reason="needs the openai extra")

from tests.cloud.kit import KEYS, SAID, calls_show  # noqa: E402
from tests.fakes.openai_realtime import FakeRealtime, RealtimeReply  # noqa: E402
from voxline import pricing  # noqa: E402
from voxline.pipelines.call_memory import MemoryRuntime, simulate_remembered  # noqa: E402
from voxline.pipelines.scenario import Scenario, Turn  # noqa: E402
from voxline.spec import parse_spec  # noqa: E402

ANSWER = "We open at noon. The kitchen closes at ten."
HELLO = RealtimeReply(text="Hello, front desk.")  # the model opens the call
LONG = ("We have a long menu today, with soups, salads, pasta, grilled fish, three kinds of steak, "
        "a vegetarian lasagne and six desserts, and the chef also recommends the risotto.")
TOOLS = '''
def opening_hours(day: str = "today") -> dict:
    """Opening hours of the restaurant on a day."""
    return {"day": day, "opens": "12:00", "closes": "22:00"}
'''


@pytest.fixture(autouse=True)
def _keys(monkeypatch):
    for name, value in KEYS.items():
        monkeypatch.setenv(name, value)
    pricing._load.cache_clear()


def realtime_agent(fake: FakeRealtime, tmp_path, **extra):
    (tmp_path / "tools.py").write_text(TOOLS)
    return parse_spec({
        "name": "front-desk", "prompt": "You answer the phone for a small restaurant.",
        "engine": "realtime",
        "realtime": {"provider": "openai", "model": "gpt-realtime", "voice": "marin",
                     "base_url": f"{fake.url}/v1"},
        "tools": [{"name": "opening_hours", "handler": "tools.py:opening_hours",
                   "description": "Opening hours of the restaurant."}],
        "turn": {"strategy": "silence", "stop_secs": 0.3}, "vad": {"stop_secs": 0.2},
        "idle": {"reprompt_after_secs": 60}, **extra,
    }, base_dir=tmp_path)


async def call(spec, turns, db):
    runtime = await MemoryRuntime.open(str(db))
    try:
        report = await simulate_remembered(
            Scenario(agent=spec.base_dir / "agent.yaml", turns=turns, answer_timeout_secs=20),
            runtime=runtime, spec=spec, listen=False, remember=False, recall=False)
    finally:
        await runtime.close()
    return report


async def test_a_realtime_turn_is_heard_and_recorded(tmp_path):
    async with FakeRealtime(api_key=KEYS["OPENAI_API_KEY"], transcripts=[SAID],
                            replies=[HELLO, RealtimeReply(text=ANSWER)]) as fake:
        spec = realtime_agent(fake, tmp_path)
        report = await call(spec, [Turn(say=SAID)], tmp_path / "calls.db")
        session = fake.sessions[0]

    assert report.turns[0].agent_heard == SAID and report.turns[0].agent_said == ANSWER
    assert report.greeting_heard == ""  # listen=False; the opening is in the record below
    # The GA session: our VAD decides the turns (server VAD off), the caller is transcribed.
    assert session.request.query["model"] == "gpt-realtime"
    assert session.request.headers["authorization"] == f"Bearer {KEYS['OPENAI_API_KEY']}"
    update = session.of("session.update")[-1]["session"]
    assert update["audio"]["input"]["turn_detection"] is None  # null: the server's VAD is off
    assert update["audio"]["input"]["transcription"]["model"]
    assert update["audio"]["output"]["voice"] == "marin"
    assert "small restaurant" in update["instructions"]
    assert [t["name"] for t in update["tools"]] == ["opening_hours"]
    kinds = [e["type"] for e in session.events]
    commit = kinds.index("input_audio_buffer.commit")
    assert "response.create" in kinds[commit:]  # the caller's turn ends: commit, then answer
    assert session.committed_secs > 0.5

    show, text = await _show(tmp_path)
    greeting, user, agent = [t for t in show["turns"] if t["text"]]
    assert (greeting["role"], greeting["heard"]) == ("assistant", "Hello, front desk.")
    assert (user["role"], user["text"]) == ("user", SAID)
    assert (agent["role"], agent["heard"]) == ("assistant", ANSWER)
    assert agent["providers"]["realtime"] == {"provider": "openai", "model": "gpt-realtime"}
    secs = agent["usage"]["realtime_audio_secs"]
    assert secs > 2.0  # the caller's audio sent in, and the answer's out
    assert agent["cost_usd"] == pytest.approx(secs / 60 * 0.24, rel=1e-3)
    assert "realtime=openai/gpt-realtime" in text


async def test_a_tool_call_is_run_and_answered(tmp_path):
    async with FakeRealtime(transcripts=["When do you open today?"], replies=[
            HELLO, RealtimeReply(tool="opening_hours", arguments='{"day": "today"}'),
            RealtimeReply(text="We open at noon today.")]) as fake:
        spec = realtime_agent(fake, tmp_path)
        report = await call(spec, [Turn(say="When do you open today?")], tmp_path / "calls.db")
        session = fake.sessions[0]

    assert report.turns[0].agent_said == "We open at noon today."
    outputs = [e["item"] for e in session.of("conversation.item.create") if e["item"]["type"] == "function_call_output"]
    assert len(outputs) == 1 and '"opens": "12:00"' in outputs[0]["output"]
    assert len(session.of("response.create")) == 3  # the opening, the caller's turn, the tool's result
    show, _ = await _show(tmp_path)
    agent = [t for t in show["turns"] if t["role"] == "assistant" and t["text"]][-1]
    assert [(c["name"], c["arguments"]) for c in agent["tool_calls"]] == [("opening_hours", {"day": "today"})]


async def test_barge_in_cancels_and_truncates_to_what_was_played(tmp_path):
    async with FakeRealtime(transcripts=["What is on the menu?", "Do you have soup?"], speed=1.5,
                            replies=[HELLO, RealtimeReply(text=LONG), RealtimeReply(text="Yes, tomato soup.")]) as fake:
        spec = realtime_agent(fake, tmp_path)
        report = await call(spec, [Turn(say="What is on the menu?"), Turn(barge_in="Do you have soup?")],
                            tmp_path / "calls.db")
        session = fake.sessions[0]

    cancel = session.of("response.cancel")
    truncate = session.of("conversation.item.truncate")
    assert cancel and len(truncate) == 1
    answer = next(i for i in fake.items_of("assistant") if i.get("truncated_at_ms"))
    full_ms = synth_ms(LONG)
    assert 300 < truncate[0]["audio_end_ms"] < full_ms  # cut where the caller cut in
    assert answer["content"][0]["transcript"] != LONG
    first, second = report.turns
    assert first.interrupted and second.agent_said == "Yes, tomato soup."
    show, _ = await _show(tmp_path)
    cut = next(t for t in show["turns"] if t["role"] == "assistant" and t["interrupted"])
    heard = cut["heard"]
    assert heard and LONG.startswith(heard.rstrip(",. ")[:20]) and len(heard) < len(LONG)


def synth_ms(text: str) -> float:
    from tests.fakes.synth import synthesize

    speech = synthesize(text, 24000)
    return len(speech.pcm) / 2 / 24000 * 1000


async def _show(tmp_path):
    import asyncio

    return await asyncio.to_thread(calls_show, tmp_path / "calls.db")


async def test_a_silent_caller_is_reprompted_and_told_goodbye_by_the_model(tmp_path):
    reprompt, goodbye = "Are you still there?", "Goodbye for now."
    async with FakeRealtime(replies=[HELLO, RealtimeReply(text=reprompt), RealtimeReply(text=goodbye)]) as fake:
        spec = realtime_agent(fake, tmp_path)
        spec = spec.model_copy(update={"idle": spec.idle.model_copy(update={
            "reprompt_after_secs": 1.0, "max_reprompts": 1, "reprompt": reprompt, "goodbye": goodbye})})
        report = await call(spec, [Turn(silence=12)], tmp_path / "calls.db")
        session = fake.sessions[0]

    # No TTS in a realtime call: the reprompt and the goodbye were asked of the model...
    said = [e["item"]["content"][0]["text"] for e in session.of("conversation.item.create")
            if e["item"]["type"] == "message" and e["item"]["role"] == "system"]
    assert any(reprompt in s for s in said) and any(goodbye in s for s in said)
    assert len(session.of("response.create")) == 3  # the opening, the reprompt, the goodbye
    # ...spoken, played to the end, and the call hung up after the goodbye.
    assert report.end_reason == "caller_silent"
    show, _ = await _show(tmp_path)
    heard = [t["heard"] for t in show["turns"] if t["role"] == "assistant" and t["text"]]
    assert heard == [f"Hello, front desk. {reprompt} {goodbye}"]  # no caller turn between them

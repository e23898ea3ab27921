"""CallMemory on both backends: recording turn by turn, recall at call start, remembering
at call end — through a real CallSession driven by the simulator, and through a real
stream of CallLog turns."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from pathlib import Path
from types import SimpleNamespace

import pytest
from pydantic import ValidationError

from tests.fakes.scripted import ScriptedSTT
from tests.memory.fake_llm import RememberingLLM
from voxline.integrations.providers.local.espeak import EspeakTTSService
from voxline.memory import MemorySettings, RetrievalProfile, WritePolicy
from voxline.pipelines.builder import Services
from voxline.pipelines.call_memory import (
    CallMemory,
    MemoryRuntime,
    settings_for,
    simulate_remembered,
)
from voxline.pipelines.scenario import Caller, Scenario, Turn
from voxline.pipelines.session import CallResult
from voxline.pipelines.simulate import Report
from voxline.processors.call_log import ToolCallRecord, TurnRecord
from voxline.spec import AgentSpec, parse_spec

CALLER = "+15550100123"


def agent(**extra: object) -> AgentSpec:
    return parse_spec(
        {
            "name": "front-desk",
            "greeting": "Hello, front desk.",
            "prompt": "You answer the phone for a small hotel.",
            "turn": {"strategy": "silence", "stop_secs": 0.3},
            "vad": {"stop_secs": 0.2},
            **extra,
        }
    )


def new_call_id() -> str:
    return f"call-{uuid.uuid4().hex[:12]}"


def result(call_id: str, turns: list[TurnRecord], reason: str = "caller_hangup") -> CallResult:
    now = time.time()
    return CallResult(call_id, "front-desk", reason, now - 5, now, turns)


async def feed(memory: CallMemory, turns: list[TurnRecord]) -> None:
    for t in turns:
        t.ended_at = t.ended_at or time.time()
        await memory.on_turn(t)


# -- a real call session, driven by the simulator -------------------------------------


async def simulated_call(
    runtime: MemoryRuntime, tenant: str, said: list[str]
) -> tuple[Report, RememberingLLM]:
    """One `voxline simulate` call with memory, as the CLI runs each scenario file."""
    llm = RememberingLLM()
    report = await simulate_remembered(
        Scenario(
            agent=Path("front-desk.yaml"),
            caller=Caller(id=CALLER),
            turns=[Turn(say=s) for s in said],
            answer_timeout_secs=20,
        ),
        runtime=runtime,
        spec=agent(),
        services=Services(stt=ScriptedSTT(said), llm=llm, tts=EspeakTTSService()),
        listen=False,
        tenant=tenant,
    )
    return report, llm


async def test_second_call_knows_the_caller(database_url: str, tenant: str) -> None:
    runtime = await MemoryRuntime.open(database_url)
    try:
        first, llm1 = await simulated_call(runtime, tenant, ["Hi, my name is Anna."])
        assert first.turns[0].agent_said == "Nice to meet you."
        assert "remember" not in llm1.systems[0]  # an unknown caller: nothing recalled

        second, llm2 = await simulated_call(runtime, tenant, ["Hello again."])
        assert "Anna" in llm2.systems[0]  # recalled into the LLM's system prompt
        assert second.turns[0].agent_said == "Welcome back, Anna!"

        store = runtime.store
        calls = await store.list_calls(tenant, caller_key=CALLER)
        assert len(calls) == 2 and {c.status for c in calls} == {"completed"}
        call = await store.get_call(tenant, calls[-1].id)  # newest first: this is call 1
        assert call is not None and call.end_reason == first.end_reason
        assert call.model_versions["prompt_sha256"]
        # The VAD may split the caller's sentence; the scripted STT then adds "...".
        said = [(t.index, t.role, t.text[:20]) for t in call.turns]
        assert said == [
            (1, "assistant", "Hello, front desk."),
            (2, "user", "Hi, my name is Anna."),
            (3, "assistant", "Nice to meet you."),
        ]
        cid = await store.caller_id(tenant, CALLER)
        assert len(await store.recent_summaries(tenant, cid or "", limit=5)) == 2
    finally:
        await runtime.close()


# -- a stream of CallLog turns ----------------------------------------------------------


async def test_turns_and_tool_calls_are_recorded_as_they_close(
    database_url: str, tenant: str
) -> None:
    runtime = await MemoryRuntime.open(database_url)
    try:
        spec, call_id = agent(), new_call_id()
        memory = await CallMemory.open(
            agent=spec, call_id=call_id, caller_key=CALLER, tenant=tenant, runtime=runtime,
            channel="phone", from_=CALLER, to="+15550000000",
        )  # fmt: skip
        turns = [
            TurnRecord(0, agent_text="Hello, front desk."),
            TurnRecord(
                1,
                user_text="Book me a room for Friday, I'm Anna.",
                agent_text="Booked: Friday, one room.",
                latency_ms={"llm_ttft": 120.0},
                tool_calls=[
                    ToolCallRecord("book_room", {"day": "friday"}, {"id": "r1", "at": object()}),
                    ToolCallRecord("notify", {"to": "x"}, None, error="timeout", duration_ms=5.0),
                ],
            ),
        ]
        await feed(memory, turns[:1])
        assert await runtime.recorder.flush(10)
        mid_call = await runtime.store.get_call(tenant, call_id)
        assert mid_call is not None and mid_call.status == "in-progress"
        assert [t.text for t in mid_call.turns] == ["Hello, front desk."]

        await feed(memory, turns[1:])
        remembered = await memory.finish(result(call_id, turns))
        assert remembered is not None and remembered.inserted
        call = await runtime.store.get_call(tenant, call_id)
        assert call is not None
        assert [(t.index, t.role) for t in call.turns] == [
            (1, "assistant"),
            (2, "user"),
            (3, "assistant"),
        ]
        assert call.turns[2].heard == "Booked: Friday, one room."
        assert call.latency_stats and call.latency_stats["llm_ttft"]["n"] == 1
        tools = {t.name: t for t in call.tool_calls}
        assert tools["book_room"].turn_index == 3 and tools["book_room"].result["id"] == "r1"
        assert isinstance(tools["book_room"].result["at"], str)  # made JSON-safe, not dropped
        assert tools["notify"].error == "timeout"
        assert runtime.recorder.stats.failed == 0
        assert call.from_ == CALLER and call.status == "completed"
    finally:
        await runtime.close()


async def test_redacted_transcripts_and_summaries(database_url: str, tenant: str) -> None:
    runtime = await MemoryRuntime.open(database_url)
    try:
        call_id = new_call_id()
        memory = await CallMemory.open(
            agent=agent(), call_id=call_id, caller_key=CALLER, tenant=tenant, runtime=runtime,
            redact_transcripts=True,
        )  # fmt: skip
        turns = [
            TurnRecord(
                1,
                user_text="My card is 4111 1111 1111 1111 and mail anna@example.org.",
                agent_text="Thanks, I'll email anna@example.org.",
                tool_calls=[ToolCallRecord("pay", {"card": "4111 1111 1111 1111"}, "ok")],
            )
        ]
        await feed(memory, turns)
        await memory.finish(result(call_id, turns))
        call = await runtime.store.get_call(tenant, call_id)
        assert call is not None
        stored = json.dumps([t.text for t in call.turns] + [call.tool_calls[0].arguments])
        assert "4111" not in stored and "anna@example.org" not in stored
        assert "[CARD]" in stored and "[EMAIL]" in stored
        cid = await runtime.store.caller_id(tenant, CALLER)
        [summary] = await runtime.store.recent_summaries(tenant, cid or "", limit=1)
        assert "4111" not in summary.text and "anna@example.org" not in summary.text
    finally:
        await runtime.close()


async def test_write_policy_and_summarizer_come_from_settings(
    database_url: str, tenant: str
) -> None:
    runtime = await MemoryRuntime.open(database_url)
    prompts: list[str] = []

    async def summarize(prompt: str) -> str:
        prompts.append(prompt)
        return json.dumps(
            {
                "summary": "Anna asked about her booking.",
                "facts": [
                    {"kind": "name", "text": "The caller's name is Anna.", "importance": 0.9},
                    {"kind": "contact", "text": "Anna's email is on file.", "importance": 0.5},
                ],
            }
        )

    try:
        call_id = new_call_id()
        memory = await CallMemory.open(
            agent=agent(), call_id=call_id, caller_key=CALLER, tenant=tenant, runtime=runtime,
            write_policy=WritePolicy(deny_kinds=("contact",)),
        )  # fmt: skip
        turns = [TurnRecord(1, user_text="It's Anna, about my booking.", agent_text="Sure.")]
        await feed(memory, turns)
        remembered = await memory.finish(result(call_id, turns), summarize=summarize)
        assert remembered is not None
        assert remembered.summary == "Anna asked about her booking."
        assert remembered.rejected == [("contact", "kind 'contact' not allowed")]
        assert "It's Anna, about my booking." in prompts[0]
        kinds = [m.kind for m in await runtime.store.list_memories(tenant, CALLER)]
        assert kinds == ["name"]
    finally:
        await runtime.close()


async def test_recall_over_budget_is_skipped(database_url: str, tenant: str) -> None:
    runtime = await MemoryRuntime.open(database_url)
    try:
        first = new_call_id()
        memory = await CallMemory.open(
            agent=agent(), call_id=first, caller_key=CALLER, tenant=tenant, runtime=runtime
        )
        turns = [TurnRecord(1, user_text="My name is Anna.", agent_text="Hi Anna.")]
        await feed(memory, turns)
        await memory.finish(result(first, turns))

        starved = await CallMemory.open(
            agent=agent(), call_id=new_call_id(), caller_key=CALLER, tenant=tenant,
            runtime=runtime, retrieval=RetrievalProfile(budget_ms=0.001),
        )  # fmt: skip
        assert starved.recall_skipped and starved.extra_context == []
        assert starved.service is not None
        assert starved.service.stats.skipped_over_budget == 1

        other_tenant = await CallMemory.open(
            agent=agent(), call_id=new_call_id(), caller_key=CALLER, tenant=tenant + "-x",
            runtime=runtime,
        )  # fmt: skip
        assert other_tenant.extra_context == []  # another tenant knows nothing of Anna

        normal = await CallMemory.open(
            agent=agent(), call_id=new_call_id(), caller_key=CALLER, tenant=tenant, runtime=runtime
        )
        assert not normal.recall_skipped and "Anna" in normal.extra_context[0]
    finally:
        await runtime.close()


async def test_disabled_memory_touches_nothing(tmp_path: Path) -> None:
    db = tmp_path / "never.db"
    memory = await CallMemory.open(
        str(db), agent=agent(), call_id=new_call_id(), caller_key=CALLER, enabled=False
    )
    await memory.on_turn(TurnRecord(1, user_text="My name is Anna.", ended_at=time.time()))
    assert await memory.finish(result(memory.call_id, [])) is None
    assert memory.extra_context == [] and not memory.enabled
    assert not db.exists()


def test_settings_from_the_agent_spec_block() -> None:
    block = MemorySettings.model_validate(
        {
            "tenant": "hotel-aurora",
            "redact_transcripts": True,
            "write_policy": {"deny_kinds": ["contact"], "deny_patterns": [r"\bpassport\b"]},
            "retrieval": {"top_k": 3, "budget_ms": 150},
        }
    )
    spec = SimpleNamespace(name="front-desk", memory=block)
    assert settings_for(spec) is block
    tuned = settings_for(spec, tenant="other")
    assert (tuned.tenant, tuned.retrieval.top_k, tuned.redacts) == ("other", 3, True)
    assert settings_for(agent()).tenant == "default"  # a spec without the block
    assert block.write_policy.rejects("fact", "Passport number X1") == "denied pattern"
    with pytest.raises(ValidationError):
        MemorySettings.model_validate({"tenant": "a b"})
    with pytest.raises(ValidationError):
        MemorySettings.model_validate({"recal": True})  # typos are errors, not ignored


async def test_database_outage_never_reaches_the_call(private_postgres, tenant: str) -> None:
    """Postgres stops mid-call: turns are buffered, recall answers empty at once, finish
    gives up on the summary without raising; when Postgres returns nothing is lost."""
    runtime = await MemoryRuntime.open(private_postgres.url)
    try:
        call_id = new_call_id()
        memory = await CallMemory.open(
            agent=agent(), call_id=call_id, caller_key=CALLER, tenant=tenant, runtime=runtime
        )
        turns = [
            TurnRecord(i, user_text=f"question {i}", agent_text=f"answer {i}") for i in range(6)
        ]
        await feed(memory, turns[:2])
        assert await runtime.recorder.flush(10)

        await asyncio.to_thread(private_postgres.stop, "immediate")
        await feed(memory, turns[2:])  # handed over, not written
        other = await CallMemory.open(
            agent=agent(), call_id=new_call_id(), caller_key=CALLER, tenant=tenant,
            runtime=runtime,
        )  # fmt: skip
        assert other.extra_context == []  # no memory, but the call starts
        assert await memory.finish(result(call_id, turns), flush_timeout_s=0.5) is None
        assert runtime.recorder.pending > 0

        await asyncio.to_thread(private_postgres.start)
        assert await runtime.recorder.flush(30)
        call = await runtime.store.get_call(tenant, call_id)
        assert call is not None and call.status == "completed"
        assert [t.index for t in call.turns] == list(range(12))  # user 2i, agent 2i + 1
    finally:
        await runtime.close()


async def test_each_turn_keeps_the_language_it_was_spoken_in(database_url: str, tenant: str) -> None:
    from voxline.memory.call_views import calls_show, render

    runtime = await MemoryRuntime.open(database_url)
    try:
        call_id = new_call_id()
        memory = await CallMemory.open(agent=agent(), call_id=call_id, caller_key=CALLER, tenant=tenant,
                                       runtime=runtime)
        turns = [
            TurnRecord(1, user_text="When do you open?", agent_text="At noon.", language="en"),
            TurnRecord(2, user_text="¿Y a qué hora cierran?", agent_text="A las once.", language="es"),
            TurnRecord(3, user_text="Thanks", agent_text="Bye.", language="en\n; DROP"),  # not a code
        ]
        await feed(memory, turns)
        await memory.finish(result(call_id, turns))
        call = await runtime.store.get_call(tenant, call_id)
        assert call is not None
        assert [(t.role, t.language) for t in call.turns] == [
            ("user", "en"), ("assistant", "en"), ("user", "es"), ("assistant", "es"),
            ("user", None), ("assistant", None)]
    finally:
        await runtime.close()
    shown = await asyncio.to_thread(calls_show, database_url, tenant, call_id)  # `voxline calls show --json`
    assert shown is not None
    assert [t.get("language") for t in shown["turns"]] == ["en", "en", "es", "es", None, None]
    text = render(shown)
    assert "caller [es]: ¿Y a qué hora cierran?" in text and "[es]:  A las once." in text, text

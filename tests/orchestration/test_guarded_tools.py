"""Guarded tools in a call: rate limits per call and per tenant, the cost cap, result
schemas, and a stale call cancelled on barge-in. Every refusal is said and recorded."""

from __future__ import annotations

import asyncio
import json

from tests.fakes.openai_chat import FakeOpenAIChat, Reply
from tests.fakes.scripted import ScriptedSTT
from tests.fakes.twilio_loopback import serve
from tests.orchestration.kit import AGENTS, Voice, on_fake
from voxline.audio import synthesize
from voxline.integrations.providers.registry import build_llm
from voxline.integrations.tools.guard import ToolGuard
from voxline.memory.live import InProcessLiveState
from voxline.pipelines.builder import Services
from voxline.pipelines.scenario import Scenario, Turn
from voxline.pipelines.simulate import Simulation
from voxline.processors.call_log import CallLog
from voxline.spec import RateLimit, ToolSpec, load_spec

SPEC = AGENTS / "guarded" / "agent.yaml"


def _call(tool: str, order_id: int) -> Reply:
    return Reply(tool=tool, arguments=json.dumps({"order_id": order_id}))


async def _run(replies: list[Reply], says: list[str], turns: list[Turn]):
    fake = FakeOpenAIChat(replies=replies, fallback=Reply(text="Okay then."))
    spoken: list[tuple[str, str]] = []
    async with serve(fake.app()) as url:
        spec = on_fake(load_spec(SPEC), url)
        services = Services(stt=ScriptedSTT(says), llm=build_llm(spec.llm, max_tool_calls_per_turn=3),
                            tts=Voice("en-us", spoken))
        sim = Simulation(Scenario(agent=SPEC, turns=turns, answer_timeout_secs=20), spec=spec,
                         services=services, listen=False)
        report = await sim.run()
    return report, spoken, sim


async def test_refusals_are_said_and_recorded(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    says = ["look up order one", "and order two", "check order thirteen", "the pricey one", "again pricey"]
    replies = [_call("lookup", 1), Reply(text="Order one has shipped."),
               _call("lookup", 2),  # over its per-call limit: refused, nothing re-run
               _call("shaped", 13),  # its result breaks the returns schema
               _call("pricey", 3), Reply(text="Done."),
               _call("pricey", 4)]  # 0.6 + 0.6 > 1.0: over the call's budget
    report, spoken, _ = await _run(replies, says, [Turn(say=s) for s in says])
    calls = [c for t in report.turns for c in t.tool_calls]
    errors = {c["name"]: c["error"] for c in calls if c["error"]}
    assert [c["name"] for c in calls] == ["lookup", "lookup", "shaped", "pricey", "pricey"]
    assert errors["lookup"].startswith("rate limited: 1 call(s) per call")
    assert "does not match its schema" in errors["shaped"] and "lost" in errors["shaped"]
    assert errors["pricey"].startswith("over budget")
    texts = [t for _, t in spoken]
    for sentence in ("I can only look that up once per call.", "The order system gave me something I can't read.",
                     "That is over this call's budget."):
        assert sentence in texts


async def test_a_stale_tool_call_is_cancelled_on_barge_in_and_never_spoken(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    says = ["where is order five", "actually never mind"]
    fake = FakeOpenAIChat(replies=[_call("slow", 5), Reply(text="No problem, anything else?")])
    spoken: list[tuple[str, str]] = []
    async with serve(fake.app()) as url:
        spec = on_fake(load_spec(SPEC), url)
        services = Services(stt=ScriptedSTT(list(says)), llm=build_llm(spec.llm, max_tool_calls_per_turn=3),
                            tts=Voice("en-us", spoken))
        sim = Simulation(Scenario(agent=SPEC, turns=[Turn(say=says[0]), Turn(silence=5)], answer_timeout_secs=20),
                         spec=spec, services=services, listen=False)

        async def cut_in() -> None:  # the caller speaks again while the slow tool runs
            for _ in range(400):
                if sim.session.log.tools_running:
                    break
                await asyncio.sleep(0.02)
            await asyncio.sleep(0.3)
            sim.line.say(synthesize(says[1], 16000))

        interrupter = asyncio.ensure_future(cut_in())
        await sim.run()
        await interrupter
    slow = [c for t in sim.session.log.turns for c in t.tool_calls if c.name == "slow"]
    assert slow and slow[0].error == "cancelled: the caller interrupted", slow
    assert not any("late result" in t for _, t in spoken)
    assert not any("late result" in json.dumps(m) for m in sim.session.context.get_messages())


async def test_tenant_rate_limit_is_shared_through_the_live_state():
    live = InProcessLiveState()
    tool = ToolSpec(name="lead", handler="x.py:lead", rate_limit=RateLimit(per_tenant_per_minute=2))
    guards = []
    for _ in range(3):  # three calls of one tenant
        guard = ToolGuard.of(CallLog())
        guard.use_live(live, "acme")
        guards.append(guard)
    assert await guards[0].admit(tool) is None
    assert await guards[1].admit(tool) is None
    refusal = await guards[2].admit(tool)
    assert refusal is not None and "per minute for the tenant" in refusal[0]
    other = ToolGuard.of(CallLog())
    other.use_live(live, "globex")
    assert await other.admit(tool) is None

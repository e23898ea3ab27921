"""MCP tools through Pipecat's MCPClient against a real MCP server (stdio and streamable HTTP):
only/except filtering, guarded calls, results spoken."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from tests.fakes.openai_chat import FakeOpenAIChat, Reply
from tests.fakes.scripted import ScriptedSTT
from tests.fakes.twilio_loopback import serve
from tests.orchestration.kit import AGENTS, Voice, on_fake
from voxline.integrations.providers.registry import build_llm
from voxline.pipelines.builder import Services
from voxline.pipelines.scenario import Expect, Scenario, Turn
from voxline.pipelines.simulate import Simulation
from voxline.spec import load_spec

pytest.importorskip("mcp")
SERVER = Path(__file__).parent / "mcp_menu_server.py"
ASK = "What are the specials today"


async def _call(spec_extra: dict, monkeypatch) -> tuple:
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    fake = FakeOpenAIChat(replies=[Reply(tool="todays_specials", arguments=json.dumps({"day": "friday"})),
                                   Reply(text="Today we have risotto and branzino.")])
    spoken: list[tuple[str, str]] = []
    async with serve(fake.app()) as url:
        base = on_fake(load_spec(AGENTS / "guarded" / "agent.yaml"), url)
        spec = base.model_validate({**base.model_dump(by_alias=True), "tools": [], "limits": {},
                                    "name": "menu", **spec_extra, "base_dir": base.base_dir})
        services = Services(stt=ScriptedSTT([ASK]), llm=build_llm(spec.llm, max_tool_calls_per_turn=2),
                            tts=Voice("en-us", spoken))
        sim = Simulation(Scenario(agent=AGENTS / "guarded" / "agent.yaml", answer_timeout_secs=30, turns=[
            Turn(say=ASK, expect=Expect(tool_called="todays_specials", says_any=["risotto"]))]),
            spec=spec, services=services, listen=False)
        report = await sim.run()
    return report, fake


def _advertised(fake: FakeOpenAIChat) -> list[str]:
    return sorted(t["function"]["name"] for t in fake.requests[0].get("tools") or [])


async def test_stdio_server_tools_with_except(monkeypatch):
    report, fake = await _call({"mcp": [{"mcp": {"command": sys.executable, "args": [str(SERVER)]},
                                         "except": ["drop_all_bookings"]}]}, monkeypatch)
    assert report.passed, report.failures
    assert _advertised(fake) == ["allergens", "todays_specials"]
    call = report.turns[0].tool_calls[0]
    assert call["result"] == {"day": "friday", "specials": ["risotto ai funghi", "branzino"]}


async def test_streamable_http_server_with_only(monkeypatch):
    from tests.orchestration.mcp_menu_server import app

    async with serve(app()) as mcp_url:
        report, fake = await _call({"mcp": [{"mcp": {"url": f"{mcp_url}/mcp"}, "only": ["todays_specials"]}]},
                                   monkeypatch)
    assert report.passed, report.failures
    assert _advertised(fake) == ["todays_specials"]


def test_tools_entries_written_as_mcp_become_servers():
    from voxline.spec import parse_spec

    spec = parse_spec({"name": "a", "prompt": "x", "tools": [
        {"name": "end_call", "handler": "builtin:end_call"},
        {"mcp": {"command": "python", "args": ["menu.py"]}, "only": ["todays_specials"]}]})
    assert [t.name for t in spec.tools] == ["end_call"]
    assert spec.mcp[0].mcp.command == "python" and spec.mcp[0].allows("todays_specials")
    assert not spec.mcp[0].allows("drop_all_bookings")

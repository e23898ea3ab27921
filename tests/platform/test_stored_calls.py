"""Agents, routes and tool settings stored through the admin API reach live calls.

A tenant pushes an agent, routes a number to it and configures its CRM tool (a plain
setting and an encrypted secret) through /api/v1 only — nothing in the server's
folders. A Twilio call to that number is answered by that agent; the tool runs with
the tenant's setting and opened secret, which reach neither the call record nor a log
line. A number nobody routed still gets the unknown-number answer.
"""

from __future__ import annotations

import logging
import uuid

import pytest

from tests.phone.kit import AgentScript, silence, speech
from tests.platform import crm_tool

from .conftest import PlatformServer

pytestmark = pytest.mark.services
ROUTED = "+15550007777"
CALLER = "+15557654321"


def _reply():
    asked = {"n": 0}

    def reply(text: str):
        if "look me up" in text.lower() and not asked["n"]:
            asked["n"] += 1
            return ("lookup", {"phone": CALLER})
        return "Found you, thanks."
    return reply


@pytest.fixture
def script() -> AgentScript:
    return AgentScript(greeting="Hello, thanks for calling.", transcripts=["Please look me up."], reply=_reply())


async def test_a_stored_agent_on_a_stored_route_runs_its_tool_with_the_tenants_secret(
        platform_server: PlatformServer, caplog) -> None:
    server = platform_server
    caplog.set_level(logging.DEBUG)
    tenant, key = await server.new_tenant("stored")
    secret = "crm-" + uuid.uuid4().hex
    crm_tool.SEEN.clear()
    spec = {"name": "frontline", "prompt": "You look callers up.", "greeting": "Hello, thanks for calling.",
            "turn": {"strategy": "silence", "stop_secs": 0.2}, "vad": {"start_secs": 0.15, "stop_secs": 0.3},
            "idle": {"reprompt_after_secs": 60, "max_reprompts": 0},
            "tools": [{"name": "lookup", "handler": "tests.platform.crm_tool:lookup"},
                      {"name": "end_call", "handler": "builtin:end_call"}]}
    async with server.client(key) as c:
        assert (await c.post(f"/api/v1/tenants/{tenant}/agents", json={"spec": spec})).status_code == 201
        r = await c.put(f"/api/v1/tenants/{tenant}/routes/%2B15550007777", json={"agent": "frontline"})
        assert r.status_code == 200, r.text
        r = await c.put(f"/api/v1/tenants/{tenant}/agents/frontline/tools/crm_tool",
                        json={"settings": {"base_url": "https://crm.example"}, "secrets": {"token": secret}})
        assert r.status_code == 200, r.text

    # An unrouted number: the unknown-number answer, no stream.
    unrouted = await server.rest_fake.ring(server.base + "/twilio/voice", "CA" + uuid.uuid4().hex,
                                           from_=CALLER, to="+15550006666")
    assert "<Stream" not in unrouted.text and "<Hangup" in unrouted.text

    sid = "CA" + uuid.uuid4().hex
    call = await server.incoming(sid, from_=CALLER, to=ROUTED)
    await call.connect()
    try:
        await call.wait_answered(0.0)  # the greeting
        call.say(speech("Please look me up.") + silence(0.3))
        await call.wait_said()
        assert crm_tool.SEEN or await _until(lambda: crm_tool.SEEN)
        await call.wait_answered(0.0)
    finally:
        await call.close()
    record = await server.host.records.wait_closed(sid, 15)

    assert record is not None and record.agent == "frontline" and record.tenant == tenant
    [config] = crm_tool.SEEN
    assert config.settings["base_url"] == "https://crm.example" and config.secrets["token"] == secret
    assert secret not in repr(config)
    async with server.client(key) as c:
        detail = (await c.get(f"/api/v1/tenants/{tenant}/calls/{sid}")).json()
    calls = [t for turn in detail["turns"] for t in turn.get("tool_calls") or []]
    assert [(t["name"], t["result"]["authorized"], t["result"]["crm"]) for t in calls] == [
        ("lookup", True, "https://crm.example")]
    assert secret not in str(detail) and secret not in caplog.text


async def _until(check, timeout: float = 10.0) -> bool:
    import asyncio
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        await asyncio.sleep(0.05)
    return False

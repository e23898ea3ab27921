"""The outbound-call API's validation, the call caps (tenant, agent, worker) and the
API docs switch, through the real server."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import httpx
import pytest

from voxline.pipelines.limits import CallLimits

from .conftest import API_KEY
from .kit import AgentScript
from .test_call_e2e import wait_for

A, B, C = ("CA" + ch * 32 for ch in "abc")
AUTH = {"Authorization": f"Bearer {API_KEY}"}
CALL = {"to": "+15551230000", "agent": "restaurant"}


async def post_calls(phone, body: object) -> httpx.Response:
    async with httpx.AsyncClient() as client:
        if isinstance(body, bytes):
            return await client.post(phone.base + "/calls", content=body,
                                     headers={**AUTH, "Content-Type": "application/json"})
        return await client.post(phone.base + "/calls", json=body, headers=AUTH)


# -- POST /calls validation --------------------------------------------------------------
@pytest.mark.parametrize("body, status, says", [
    ({**CALL, "to": "client:attacker"}, 422, "'to' must be an E.164 number or a sip: address"),
    ({**CALL, "to": "+" + "1" * 255}, 422, "'to' must be an E.164 number"),
    ({**CALL, "to": "+15551230000\n"}, 422, "'to' must be an E.164 number"),
    ({**CALL, "to": "+1555\n1230000"}, 422, "'to' must be an E.164 number"),
    ({**CALL, "to": "+1" + "5" * 400}, 422, "invalid body"),
    ({**CALL, "from": "client:attacker"}, 422, "'from' must be an E.164 number"),
    ({**CALL, "agent": "nobody"}, 404, "unknown agent"),
    ({"agent": "restaurant"}, 422, "invalid body"),
    (["+15551230000", "restaurant"], 422, "invalid body"),
    (b"{not json", 422, "invalid body"),
])
async def test_a_bad_outbound_request_is_refused_clearly(phone, body, status, says) -> None:
    response = await post_calls(phone, body)
    assert response.status_code == status, response.text
    assert says in response.json()["error"], response.json()
    if response.json()["error"] == "invalid body":
        assert response.json()["problems"]  # which field, and what is wrong with it
    assert phone.rest_fake.calls == {}  # nothing was dialled
    assert await phone.stored_calls() == []


# -- caps ---------------------------------------------------------------------------------
def is_busy(twiml: str) -> bool:
    root = ET.fromstring(twiml)
    say = root.find("Say")
    return (say is not None and say.text == CallLimits().busy_message
            and root.find("Hangup") is not None and root.find("Connect") is None)


async def ring(phone, sid: str) -> str:
    response = await phone.rest_fake.ring(phone.base + "/twilio/voice", sid, from_="+15557654321",
                                          to="+15550001111")
    assert response.status_code == 200
    return response.text


@pytest.mark.parametrize("app_options, script", [
    ({"limits": CallLimits(max_calls_per_tenant=1)}, AgentScript()),
    ({}, AgentScript(limits={"max_concurrent_calls": 1})),
], ids=["tenant cap", "agent cap"])
async def test_over_the_cap_callers_hear_busy_and_the_api_says_429(phone) -> None:
    call = await phone.incoming(A)
    await call.connect()
    try:
        assert await wait_for(lambda: len(call.played) > 2000, 10)
        assert is_busy(await ring(phone, B))
        assert await phone.records.get(B) is None  # refused at the webhook: nothing stored
        placed = await post_calls(phone, CALL)
        assert placed.status_code == 429, placed.text
        assert "cap" in placed.json()["error"]
        # Nothing was placed: the cap is checked before Twilio is asked, so nobody's phone rings.
        assert not [c for c in phone.rest_fake.calls.values() if c.one("Url")]  # Url: placed by POST /calls
    finally:
        await call.stop()
    await phone.records.wait_closed(A, 10)
    # The line is free again: the next inbound call is admitted ...
    assert await wait_for(lambda: A not in phone.app.state.host.calls, 5)
    assert "<Stream" in await ring(phone, C)
    # ... and holds the line until its stream starts -- or until Twilio says it is over.
    assert (await post_calls(phone, CALL)).status_code == 429
    status = phone.base + "/twilio/status"
    assert (await phone.rest_fake.send_status(C, "completed", url=status)).status_code == 204
    placed = await post_calls(phone, CALL)
    assert placed.status_code == 201
    # An outbound call nobody answers gives the line back as well.
    assert (await phone.rest_fake.send_status(placed.json()["call_sid"], "no-answer")).status_code == 204
    assert "<Stream" in await ring(phone, "CA" + "d" * 32)


@pytest.mark.parametrize("app_options", [{"limits": CallLimits(max_calls_per_worker=1)}])
async def test_a_full_worker_answers_503(phone) -> None:
    call = await phone.incoming(A)
    await call.connect()
    try:
        assert await wait_for(lambda: len(call.played) > 2000, 10)
        full = await post_calls(phone, CALL)
        assert full.status_code == 503 and full.headers["Retry-After"]
        assert "capacity" in full.json()["error"]
        assert set(phone.rest_fake.calls) == {A}  # nothing dialled
    finally:
        await call.stop()
    await phone.records.wait_closed(A, 10)
    assert await wait_for(lambda: phone.app.state.host.active_calls == 0, 5)
    assert (await post_calls(phone, CALL)).status_code == 201


# -- API docs -------------------------------------------------------------------------------
@pytest.fixture
def no_docs_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VOXLINE_DOCS", raising=False)


async def test_api_docs_are_off_by_default(no_docs_env, phone) -> None:
    async with httpx.AsyncClient() as client:
        for path in ("/docs", "/openapi.json", "/redoc"):
            assert (await client.get(phone.base + path)).status_code == 404


@pytest.mark.parametrize("app_options", [{"docs": True}])
async def test_api_docs_when_asked_for(no_docs_env, phone) -> None:
    async with httpx.AsyncClient() as client:
        docs = await client.get(phone.base + "/docs")
        schema = await client.get(phone.base + "/openapi.json")
    assert docs.status_code == schema.status_code == 200
    assert "/calls" in schema.json()["paths"]

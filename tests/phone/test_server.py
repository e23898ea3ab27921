"""The app factory: agents folder, routing table, outbound calls API, health."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.fakes.twilio_rest import stream_of
from voxline.errors import SpecError
from voxline.server import load_agents, load_routes, place_call

from .conftest import API_KEY
from .kit import AgentScript, write_agents


async def test_healthz(phone) -> None:
    async with httpx.AsyncClient() as client:
        r = await client.get(phone.base + "/healthz")
    assert r.status_code == 200
    assert r.json() == {"status": "ok", "agents": ["restaurant"], "active_calls": 0}


async def test_outbound_calls_need_the_api_key(phone) -> None:
    body = {"to": "+15551230000", "agent": "restaurant"}
    async with httpx.AsyncClient() as client:
        missing = await client.post(phone.base + "/calls", json=body)
        wrong = await client.post(phone.base + "/calls", json=body,
                                  headers={"Authorization": "Bearer nope"})
        unknown = await client.post(phone.base + "/calls", json={**body, "agent": "nobody"},
                                    headers={"Authorization": f"Bearer {API_KEY}"})
    assert (missing.status_code, wrong.status_code, unknown.status_code) == (401, 403, 404)
    assert phone.rest_fake.calls == {}


async def test_place_call_creates_call_with_stream_twiml(phone) -> None:
    answer = await place_call("+15551230000", "restaurant", server=phone.base, api_key=API_KEY)
    sid = answer["call_sid"]
    created = phone.rest_fake.calls[sid]
    assert created.one("From") == "+15550001111"  # the number that routes to the agent
    # Twilio fetches the call's TwiML from our answer URL once the callee picks up.
    assert created.one("Twiml") is None
    assert created.one("Url") == phone.base + "/twilio/answer?agent=restaurant"
    assert created.one("StatusCallback") == phone.base + "/twilio/status"
    record = await phone.records.get(sid)
    assert record is not None and record.direction == "outbound" and record.status == "queued"
    assert record.ended_at is None
    response = await phone.rest_fake.answer(sid)
    url, params = stream_of(response.text)
    assert response.status_code == 200 and url == phone.ws_url
    assert {k: params[k] for k in ("agent", "direction", "from", "to")} == {
        "agent": "restaurant", "direction": "outbound", "from": "+15550001111", "to": "+15551230000"}
    assert params["token"]


def test_routes_must_name_known_agents(tmp_path: Path) -> None:
    root = write_agents(tmp_path, AgentScript(), {"numbers": {"+1 555 000 1111": "ghost"}})
    agents = load_agents(root)
    with pytest.raises(SpecError, match="unknown agent 'ghost'"):
        load_routes(root, agents)
    (root / "routes.yaml").write_text("numbers: {'+1 (555) 000-1111': restaurant}\n")
    assert load_routes(root, agents).numbers == {"+15550001111": "restaurant"}

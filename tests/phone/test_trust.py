"""Trust: a media stream is served only for a call our own webhook announced, with the
token its TwiML carried, once; forwarded headers count only when configured.
Whatever is refused is neither stored nor spoken."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.fakes.twilio_media import FakeTwilioCall
from tests.fakes.twilio_rest import stream_of
from voxline.transports import call_token

from .conftest import ACCOUNT, API_KEY
from .test_call_e2e import wait_for
from .test_webhooks import VOICE, signed
from .wire import identity, raw_stream, start_message, token_params

A = "CA" + "a" * 32
B = "CA" + "b" * 32
PUBLIC = "voice.example.com"
FORGED = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": PUBLIC}
AUTH = {"Authorization": f"Bearer {API_KEY}"}


async def ring(phone, sid: str) -> dict[str, str]:
    """The <Parameter>s (token included) of the TwiML our voice webhook answered."""
    response = await phone.rest_fake.ring(phone.base + "/twilio/voice", sid, from_="+15557654321",
                                          to="+15550001111")
    assert response.status_code == 200
    return stream_of(response.text)[1]


async def assert_ringing_only(phone, sid: str) -> None:
    """The webhook's row, untouched by the refused stream: still ringing, no turns, not served."""
    record = await phone.records.get(sid)
    assert record is not None and record.status == "ringing" and record.turns == []
    assert sid not in phone.app.state.host.calls


async def test_a_call_sid_no_webhook_announced_is_refused(phone) -> None:
    for params in (identity(),  # no token at all
                   {**identity(), "token": call_token.issue(b"another server", A, identity())}):
        code, sent = await raw_stream(phone.ws_url, [start_message(A, params)])
        assert (code, sent) == (1008, 0)
    assert await phone.records.get(A) is None and await phone.stored_calls() == []


async def test_a_token_opens_only_its_own_call(phone) -> None:
    a_params = await ring(phone, A)
    # B was never announced: A's token does not open it.
    code, sent = await raw_stream(phone.ws_url, [start_message(B, a_params)])
    assert (code, sent) == (1008, 0)
    assert await phone.records.get(B) is None
    # B rings too: A's token still does not open B.
    await ring(phone, B)
    code, sent = await raw_stream(phone.ws_url, [start_message(B, a_params)])
    assert (code, sent) == (1008, 0)
    await assert_ringing_only(phone, A)
    await assert_ringing_only(phone, B)


async def test_an_expired_token_is_refused(phone) -> None:
    expired = token_params(A, now=time.time() - 2 * call_token.TOKEN_TTL_SECS)
    code, sent = await raw_stream(phone.ws_url, [start_message(A, expired)])
    assert (code, sent) == (1008, 0)
    assert await phone.records.get(A) is None
    # The same token minted now is served (so the refusal above was the expiry's).
    code, sent = await raw_stream(phone.ws_url, [start_message(A, token_params(A))], timeout=2)
    assert code is None and sent > 0  # still open, the greeting streaming
    assert (await phone.records.wait_closed(A, 10)).end_reason == "dropped"


@pytest.mark.parametrize("field, value", [("agent", "other"), ("from", "+15550009999"),
                                          ("to", "+15550002222"), ("direction", "outbound")])
async def test_parameters_changed_after_the_webhook_are_refused(phone, field, value) -> None:
    params = await ring(phone, A)
    code, sent = await raw_stream(phone.ws_url, [start_message(A, {**params, field: value})])
    assert (code, sent) == (1008, 0)
    await assert_ringing_only(phone, A)


async def test_a_second_stream_for_a_served_call_is_refused(phone) -> None:
    call = await phone.incoming(A)
    await call.connect()
    try:
        assert await wait_for(lambda: len(call.played) > 4000, 10)
        host = phone.app.state.host
        served = host.calls[A]
        twin = FakeTwilioCall(call.url, call_sid=A, account_sid=ACCOUNT, parameters=call.parameters,
                              stream_sid="MZ" + "2" * 32)
        await twin.connect()
        assert await wait_for(twin.closed.is_set, 5)
        await twin.close()
        assert twin.close_code == 1008 and twin.events("media") == []
        # The first stream is still the one served, and still playing.
        assert host.calls.get(A) is served
        played = len(call.played)
        assert await wait_for(lambda: len(call.played) > played, 5)
    finally:
        await call.stop()
    record = await phone.records.wait_closed(A, 10)
    assert record.end_reason == "caller_hung_up"


# -- forwarded headers ----------------------------------------------------------------
async def test_forwarded_headers_are_not_believed_by_default(phone) -> None:
    public = f"https://{PUBLIC}/twilio/voice"
    async with httpx.AsyncClient() as client:
        webhook = await client.post(phone.base + "/twilio/voice", data=VOICE,
                                    headers={**signed(public, VOICE), **FORGED})
        placed = await client.post(phone.base + "/calls", json={"to": "+15551230000", "agent": "restaurant"},
                                   headers={**AUTH, **FORGED})
    # A signature for another host's URL is not one for ours.
    assert webhook.status_code == 403
    assert await phone.records.get(VOICE["CallSid"]) is None
    # Twilio is pointed at the host the request really reached, not the forged one.
    assert placed.status_code == 201
    created = phone.rest_fake.calls[placed.json()["call_sid"]]
    assert created.one("Url") == phone.base + "/twilio/answer?agent=restaurant"
    assert created.one("StatusCallback") == phone.base + "/twilio/status"
    assert all(PUBLIC not in v for values in created.params.values() for v in values)


@pytest.mark.parametrize("twilio_options", [{"trust_forwarded_headers": True}])  # VOXLINE_TRUST_PROXY=1
async def test_forwarded_headers_are_used_behind_a_trusted_proxy(phone) -> None:
    public = f"https://{PUBLIC}/twilio/voice"
    async with httpx.AsyncClient() as client:
        webhook = await client.post(phone.base + "/twilio/voice", data=VOICE,
                                    headers={**signed(public, VOICE), **FORGED})
        placed = await client.post(phone.base + "/calls", json={"to": "+15551230000", "agent": "restaurant"},
                                   headers={**AUTH, **FORGED})
    assert webhook.status_code == 200
    assert stream_of(webhook.text)[0] == f"wss://{PUBLIC}/twilio/stream"
    assert placed.status_code == 201
    created = phone.rest_fake.calls[placed.json()["call_sid"]]
    assert created.one("Url") == f"https://{PUBLIC}/twilio/answer?agent=restaurant"
    assert created.one("StatusCallback") == f"https://{PUBLIC}/twilio/status"

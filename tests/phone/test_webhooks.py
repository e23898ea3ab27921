"""Signatures, TwiML, routing, status callbacks, REST retries -- real servers on loopback."""

from __future__ import annotations

import httpx
import pytest
from twilio.request_validator import RequestValidator

from voxline.errors import ProviderError
from voxline.transports.twilio import (
    MachineDetection,
    RetryOptions,
    TwilioRestClient,
    compute_signature,
    dial_twiml,
    place_outbound_call,
    say_and_hangup,
    stream_twiml,
)

from .conftest import ACCOUNT, TOKEN

VOICE = {"CallSid": "CA0000000000000000000000000000000a", "To": "+15550001111",
         "From": "+15557654321", "AccountSid": ACCOUNT}


def signed(url: str, params: dict) -> dict:
    return {"X-Twilio-Signature": RequestValidator(TOKEN).compute_signature(url, params)}


def test_signature_matches_official_sdk() -> None:
    url = "https://voice.example.com/twilio/voice?x=1"
    assert compute_signature(TOKEN, url, VOICE) == RequestValidator(TOKEN).compute_signature(url, VOICE)


async def test_voice_webhook_signed_forged_missing(phone) -> None:
    url = phone.base + "/twilio/voice"
    async with httpx.AsyncClient() as client:
        ok = await client.post(url, data=VOICE, headers=signed(url, VOICE))
        forged = await client.post(url, data={**VOICE, "To": "+19999999999"}, headers=signed(url, VOICE))
        missing = await client.post(url, data=VOICE)
    assert ok.status_code == 200 and "<Connect><Stream" in ok.text
    assert 'name="agent" value="restaurant"' in ok.text
    assert forged.status_code == 403 and missing.status_code == 403
    assert await phone.records.get("CA0000000000000000000000000000000b") is None


async def test_unknown_number_gets_polite_message(phone) -> None:
    params = {**VOICE, "To": "+15550009999"}
    url = phone.base + "/twilio/voice"
    async with httpx.AsyncClient() as client:
        r = await client.post(url, data=params, headers=signed(url, params))
    assert r.status_code == 200
    assert "<Say>" in r.text and "<Hangup />" in r.text and "Stream" not in r.text


def test_twiml_builders_escape_and_dial_sip() -> None:
    xml = stream_twiml("wss://h/twilio/stream", {"agent": 'a"<b>'})
    assert 'value="a&quot;&lt;b&gt;"' in xml
    assert "<Sip>sip:desk@pbx.example.com</Sip>" in dial_twiml("sip:desk@pbx.example.com")
    assert "<Number>+15551230000</Number>" in dial_twiml("+15551230000")
    assert say_and_hangup("Bye & go").count("&amp;") == 1


async def place(phone) -> str:
    return await place_outbound_call(
        host=phone.app.state.host, rest=phone.rest, to="+15551230000", from_="+15550001111",
        agent="restaurant", public_base_url=phone.base, machine_detection=MachineDetection())


async def test_outbound_call_and_status_callbacks(phone) -> None:
    sid = await place(phone)
    created = phone.rest_fake.calls[sid]
    assert created.one("Url") == phone.base + "/twilio/answer?agent=restaurant"
    assert created.one("Twiml") is None
    assert created.params["StatusCallbackEvent"] == ["initiated", "ringing", "answered", "completed"]
    assert created.one("MachineDetection") == "DetectMessageEnd" and created.one("AsyncAmd") == "true"
    assert (await phone.records.get(sid)).status == "queued"
    for state in ("ringing", "in-progress"):
        assert (await phone.rest_fake.send_status(sid, state)).status_code == 204
    await phone.rest_fake.send_status(sid, "in-progress", AnsweredBy="machine_end_beep")
    record = await phone.records.get(sid)
    assert record.status == "in-progress" and record.answered_by == "machine_end_beep"
    await phone.rest_fake.send_status(sid, "completed")
    record = await phone.records.get(sid)
    assert record.end_reason == "caller_hung_up" and record.ended_at is not None


async def test_busy_callee_closes_record_as_busy(phone) -> None:
    sid = await place(phone)
    await phone.rest_fake.send_status(sid, "busy")
    record = await phone.records.get(sid)
    assert (record.status, record.end_reason) == ("busy", "busy") and record.ended_at is not None


async def test_rest_retries_retryable_and_reports_permanent(phone) -> None:
    phone.rest_fake.add_inbound("CA1")
    phone.rest_fake.fail_next(503, 429)
    await phone.rest.hang_up("CA1")  # third attempt succeeds
    assert [s for _, _, s in phone.rest_fake.requests] == [503, 429, 200]
    phone.rest_fake.fail_next(503, 503, 503)
    with pytest.raises(ProviderError) as exc:
        await phone.rest.transfer("CA1", "+15551230000")
    assert exc.value.retryable
    bad = TwilioRestClient(ACCOUNT, "wrong", base_url=phone.config.api_base_url,
                           retry=RetryOptions(base_delay_secs=0.01))
    with pytest.raises(ProviderError) as exc:
        await bad.hang_up("CA1")
    assert not exc.value.retryable
    await bad.aclose()


async def test_rest_connection_errors_bounded() -> None:
    client = TwilioRestClient(ACCOUNT, TOKEN, base_url="http://127.0.0.1:9",
                              retry=RetryOptions(attempts=2, base_delay_secs=0.01))
    with pytest.raises(ProviderError) as exc:
        await client.hang_up("CA1")
    assert exc.value.retryable
    await client.aclose()

"""Answering machines on outbound calls: the spec decides, Twilio's async AMD verdict
(sent by the fake REST API to the AsyncAmdStatusCallback) triggers it, through create_app."""

from __future__ import annotations

import pytest

from tests.fakes.twilio_media import FakeTwilioCall
from voxline.server import place_call

from .conftest import API_KEY
from .kit import AgentScript, speech
from .test_call_e2e import correlates, wait_for

MESSAGE = "Hi, this is the restaurant. Your table is ready, call us back."


@pytest.fixture
def script(request) -> AgentScript:
    return AgentScript(greeting="Hello, this is the restaurant calling about your booking.",
                       phone=request.param)


async def outbound_call(phone) -> FakeTwilioCall:
    answer = await place_call("+15551230000", "restaurant", server=phone.base, api_key=API_KEY)
    sid = answer["call_sid"]
    call = await phone.answered(sid)  # Twilio fetches our TwiML from the call's Url
    assert (call.parameters["direction"], call.parameters["to"]) == ("outbound", "+15551230000")
    await call.connect()
    return call


@pytest.mark.parametrize("script", [{"voicemail": {"action": "leave_message", "message": MESSAGE}}],
                         indirect=True)
async def test_machine_gets_the_message_then_a_hang_up(phone) -> None:
    call = await outbound_call(phone)
    created = phone.rest_fake.calls[call.call_sid]
    assert created.one("MachineDetection") == "DetectMessageEnd"  # wait for the beep
    assert created.one("AsyncAmd") == "true"
    heard_at_hangup: list[bytes] = []
    phone.rest_fake.on_update = lambda sid, params: heard_at_hangup.append(bytes(call.played))

    # The greeting starts; a human verdict changes nothing.
    assert await wait_for(lambda: len(call.played) > 4000, 10)
    assert (await phone.rest_fake.send_amd(call.call_sid, "human")).status_code == 204
    # The machine's greeting ends with a beep: the agent's greeting is cut, the message left.
    beep = await phone.rest_fake.send_amd(call.call_sid, "machine_end_beep")
    assert beep.status_code == 204
    assert await wait_for(lambda: bool(call.clears), 5)
    record = await phone.records.wait_closed(call.call_sid, 20)
    await call.close()

    assert record is not None and record.end_reason == "voicemail"
    assert record.answered_by == "machine_end_beep"
    assert created.updates == [{"Status": "completed"}]  # hung up over REST, once
    # At the moment of the hang-up the whole message had been played (marks echoed).
    assert heard_at_hangup and correlates(_pcm(heard_at_hangup[0])[-len(speech(MESSAGE)) * 2 - 8000:],
                                          speech(MESSAGE)) > 0.9
    said = [t.text for t in record.turns if t.role == "assistant"]
    assert said[-1] == MESSAGE, said


@pytest.mark.parametrize("script", [{"voicemail": {"action": "hang_up"}}], indirect=True)
async def test_machine_is_hung_up_on_at_once(phone) -> None:
    call = await outbound_call(phone)
    created = phone.rest_fake.calls[call.call_sid]
    assert created.one("MachineDetection") == "Enable"  # answer as soon as it is known
    assert await wait_for(lambda: call.first_media_at is not None, 10)
    assert (await phone.rest_fake.send_amd(call.call_sid, "machine_start")).status_code == 204
    record = await phone.records.wait_closed(call.call_sid, 10)
    await call.close()
    assert record is not None and record.end_reason == "machine"
    assert created.updates == [{"Status": "completed"}]
    said = " ".join(t.text for t in record.turns if t.role == "assistant")
    assert MESSAGE not in said


def _pcm(ulaw: bytes) -> bytes:
    from tests.fakes.twilio_media import ulaw_to_pcm

    return ulaw_to_pcm(ulaw)

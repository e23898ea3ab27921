"""Calls from SIPp on loopback: real recorded speech as G.711 RTP, DTMF, hang-ups both
ways, CANCEL, REFER, digest authentication, refusals. The call host runs the real
CallSession pipeline with scripted STT/LLM/TTS; what it stored is checked."""

from __future__ import annotations

import pytest

from tests.phone.kit import AgentScript

from .kit import free_udp_port

SAID = "He was not an ill disposed young man."


def on_keypad(text: str):
    if "DTMF: 1" in text:
        return ("end_call", {"goodbye": "Goodbye and thank you."})
    if "DTMF: 2" in text:
        return ("transfer_call", {})
    return "I can help with that."


def turns(record) -> list[tuple[str, str]]:
    return [(t.role, t.text) for t in record.turns]


@pytest.mark.parametrize(("scenario", "codec"), [("call_speech", "PCMU"), ("call_speech_alaw", "PCMA")])
async def test_caller_speaks_then_hangs_up(sip_rig, scenario: str, codec: str) -> None:
    rig = await sip_rig(AgentScript(transcripts=[SAID]))
    run = await rig.sipp(scenario)
    assert run.returncode == 0 and run.successful == 1, run.output
    record = await rig.only_call()
    assert record.channel == "sip" and record.direction == "inbound"
    assert record.end_reason == "caller_hung_up" and record.status == "completed"
    assert record.from_ == "+15557654321" and record.to == "+15550001111"
    # One speech segment (VAD on the decoded G.711) -> exactly one caller turn, answered.
    assert turns(record) == [("assistant", "Hello, thanks for calling."), ("user", SAID),
                             ("assistant", "I can help with that.")]
    stats = record.transport_stats or {}
    assert stats["media_in"] > 200 and stats["media_out"] > 50, stats  # ~5 s in; greeting + answer out
    assert stats["malformed"] == 0 and stats["lost"] == 0
    assert f"RTP/AVP {0 if codec == 'PCMU' else 8} 101" in run.messages  # our answer picked the codec


async def test_keypad_one_agent_hangs_up_after_goodbye(sip_rig) -> None:
    rig = await sip_rig(AgentScript(reply=on_keypad))
    run = await rig.sipp("agent_hangs_up")
    assert run.returncode == 0 and run.successful == 1, run.output  # SIPp received our BYE
    record = await rig.only_call()
    assert record.end_reason == "agent_hung_up"
    assert ("user", "DTMF: 1") in turns(record)
    assert [t.name for t in record.tool_calls] == ["end_call"]
    # The BYE came after the goodbye was sent: the last assistant line was heard whole.
    role, text = turns(record)[-1]
    assert role == "assistant" and text.endswith("Goodbye and thank you."), text
    assert (record.transport_stats or {})["dtmf"] == 1


async def test_keypad_two_transfers_with_refer(sip_rig) -> None:
    # Attended transfers are asked for, but this phone's INVITE does not list replaces in
    # Supported: no consultation call (the trunk's port is closed), a blind REFER.
    rig = await sip_rig(AgentScript(reply=on_keypad), trunk=f"sip:127.0.0.1:{free_udp_port()}",
                        transfer="attended")
    run = await rig.sipp("refer")
    assert run.returncode == 0 and run.successful == 1, run.output
    assert "Refer-To: <sip:+15550002222@127.0.0.1>" in run.messages and "Replaces" not in run.messages
    record = await rig.only_call()
    assert record.end_reason == "transferred" and record.transfer_to == "+15550002222"


async def test_cancel_before_answer(sip_rig) -> None:
    rig = await sip_rig(answer_delay_secs=3.0)
    run = await rig.sipp("cancel")
    assert run.returncode == 0 and run.successful == 1, run.output
    assert run.statuses()[-2:] == [200, 487]
    record = await rig.only_call()
    assert record.end_reason == "canceled" and not record.turns
    assert not rig.server.dialogs and not rig.server.ports.in_use  # nothing left behind


async def test_digest_auth_success(sip_rig) -> None:
    rig = await sip_rig(allow="", users="alice:s3cret")
    run = await rig.sipp("auth", "-au", "alice", "-ap", "s3cret")
    assert run.returncode == 0 and run.successful == 1, run.output
    assert 401 in run.statuses() and 200 in run.statuses()
    record = await rig.only_call()
    assert record.from_ == "sip:alice@voxline"  # the verified identity, not the From header
    assert record.end_reason == "caller_hung_up"


async def test_digest_auth_failure_stores_nothing(sip_rig) -> None:
    rig = await sip_rig(allow="", users="alice:s3cret")
    run = await rig.sipp("auth_refused", "-au", "alice", "-ap", "wrong")
    assert run.returncode == 0 and run.successful == 1, run.output
    assert run.statuses()[-1] == 403
    assert await rig.calls() == []


async def test_not_allowed_and_no_credentials_configured(sip_rig) -> None:
    rig = await sip_rig(allow="10.0.0.0/8")
    run = await rig.sipp("refused")
    assert run.returncode == 0, run.output
    assert run.statuses()[-1] == 403
    assert await rig.calls() == []


async def test_unknown_number_is_404(sip_rig) -> None:
    rig = await sip_rig()
    run = await rig.sipp("refused", service="+15550009999")
    assert run.returncode == 0, run.output
    assert run.statuses()[-1] == 404
    assert await rig.calls() == []


async def test_media_loss_ends_the_call_as_dropped(sip_rig) -> None:
    rig = await sip_rig(media_timeout_secs=1.5)
    run = await rig.sipp("media_lost")
    assert run.returncode == 0 and run.successful == 1, run.output  # we sent BYE
    record = await rig.only_call()
    assert record.end_reason == "dropped"




ANSWER = ("We are open every day from nine in the morning until eleven at night. | "
          "On weekends we also serve brunch from ten in the morning until three in the afternoon. | "
          "Reservations can be made by phone or on our website.")


async def test_barge_in_keeps_only_the_words_sent(sip_rig) -> None:
    """The caller talks over the answer: the stored agent line is what RTP carried by then."""
    rig = await sip_rig(AgentScript(transcripts=[SAID, "Stop, I have another question."], reply=lambda _: ANSWER))
    run = await rig.sipp("barge_in")
    assert run.returncode == 0 and run.successful == 1, run.output
    record = await rig.only_call()
    cut = [t for t in record.turns if t.role == "assistant" and t.interrupted]
    assert cut, turns(record)
    heard = cut[0].text
    assert heard.startswith("We are open every day"), heard
    assert "Reservations" not in heard and len(heard) < len(ANSWER) - 40, heard
    assert ("user", "Stop, I have another question.") in turns(record)


async def test_the_human_handoff_puts_the_caller_through_with_refer(sip_rig) -> None:
    # transfer_to_human over SIP: the hold message, then a REFER to the person's number
    # (warm asks for an attended transfer; this phone cannot do Replaces: blind).
    def reply(text: str):
        return ("transfer_to_human", {"reason": "asked for a person"}) if "DTMF: 2" in text else "Sure."

    script = AgentScript(reply=reply, tools=[{"name": "transfer_to_human", "handler": "builtin:transfer_to_human"}])
    rig = await sip_rig(script, spec={"humans": {"targets": {"front desk": {"number": "+15550003333"}}}})
    run = await rig.sipp("refer")
    assert run.returncode == 0 and run.successful == 1, run.output
    assert "Refer-To: <sip:+15550003333@127.0.0.1>" in run.messages and "transfer=" not in run.messages
    record = await rig.only_call()
    assert record.end_reason == "transferred" and record.transfer_to == "+15550003333"
    said = " ".join(t.text for t in record.turns if t.role == "assistant")
    assert "Please hold while I connect you" in said

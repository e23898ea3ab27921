"""Attended transfer: two SIPp instances on loopback, the caller (a phone that accepts REFER
with Replaces) and the transfer target behind the trunk (``-sn uas``, or one that never
answers). What the REFER carries is read from the caller's message trace and checked
against the consultation dialog in the target's trace. The blind fallback for a phone
without ``replaces`` is ``test_calls.test_keypad_two_transfers_with_refer``."""

from __future__ import annotations

import re
from urllib.parse import unquote

from aiosipua import SipRequest

from tests.phone.kit import AgentScript
from voxline.transports.sip.attended import replaces_uri, supports_replaces, transfer_mode

from .kit import finish_sipp, free_udp_port, start_sipp_uas
from .test_calls import on_keypad

TARGET = "+15550002222"


def test_transfer_mode_and_replaces() -> None:
    assert transfer_mode(TARGET) == ("blind", TARGET)
    assert transfer_mode(TARGET, "attended") == ("attended", TARGET)
    assert transfer_mode(f"{TARGET};transfer=attended") == ("attended", TARGET)
    assert transfer_mode("sip:desk@pbx.example.com;transfer=Blind", "attended") == ("blind", "sip:desk@pbx.example.com")
    uri = replaces_uri("sip:10.0.0.2:5060", "a1@host", to_tag="t9", from_tag="f7")
    assert uri == "sip:10.0.0.2:5060?Replaces=a1%40host%3Bto-tag%3Dt9%3Bfrom-tag%3Df7"

    def invite(*headers: tuple[str, str]) -> SipRequest:
        request = SipRequest(method="INVITE", uri="sip:x@127.0.0.1")
        for name, value in headers:
            request.headers.append(name, value)
        return request

    assert supports_replaces(invite(("Supported", "timer, replaces")))
    assert supports_replaces(invite(("Supported", "replaces"), ("Allow", "INVITE, BYE, REFER")))
    assert not supports_replaces(invite(("Supported", "replaces"), ("Allow", "INVITE, BYE")))
    assert not supports_replaces(invite(("Allow", "INVITE, REFER")))


def _message(trace: str, start: str) -> str:
    """The first message in a SIPp trace whose start line begins with ``start``."""
    m = re.search(rf"^{re.escape(start)}.*?(?=\n\n|\Z)", trace, re.M | re.S)
    assert m is not None, start
    return m.group(0)


def _header(message: str, name: str) -> str:
    m = re.search(rf"^{name}:\s*(.*?)\s*$", message, re.M | re.I)
    assert m is not None, name
    return m.group(1)


def _tag(value: str) -> str:
    m = re.search(r";tag=([^;>\s]+)", value)
    assert m is not None, value
    return m.group(1)


async def test_attended_transfer_replaces_the_consultation(sip_rig) -> None:
    port = free_udp_port()
    rig = await sip_rig(AgentScript(reply=on_keypad), trunk=f"sip:127.0.0.1:{port}", transfer="attended",
                        replace_wait_secs=1.0)
    target = await start_sipp_uas("uas", port, rig.workdir)
    run = await rig.sipp("refer_attended")
    answered = await finish_sipp(target, rig.workdir, "uas")
    assert run.returncode == 0 and run.successful == 1, run.output
    # The target answered our consultation INVITE and, never replaced here, got our BYE.
    assert answered.returncode == 0 and answered.successful == 1, answered.output
    invite, ok = _message(answered.messages, "INVITE "), _message(answered.messages, "SIP/2.0 200 OK")
    assert invite.startswith(f"INVITE sip:{TARGET}@127.0.0.1:{port} ")
    call_id, ours, theirs = _header(invite, "Call-ID"), _tag(_header(invite, "From")), _tag(_header(ok, "To"))

    refer_to = _header(_message(run.messages, "REFER "), "Refer-To")
    m = re.fullmatch(r"<(sip:[^?>]+)\?Replaces=([^>]+)>", refer_to)
    assert m is not None, refer_to
    assert m.group(1).startswith(f"sip:127.0.0.1:{port}")  # the target's Contact
    assert unquote(m.group(2)) == f"{call_id};to-tag={theirs};from-tag={ours}"  # RFC 3891, as the target sees it
    record = await rig.only_call()
    assert record.end_reason == "transferred" and record.transfer_to == TARGET
    assert not rig.server.consultations and not rig.server.ports.in_use


async def test_attended_target_does_not_answer(sip_rig) -> None:
    """Nobody answers at the target: the consultation is cancelled, the agent (told that the
    transfer failed) speaks to the caller again -- here it says so and ends the call."""
    told = "Nobody answered, goodbye."
    asked: list[str] = []

    def reply(text: str):
        if "DTMF: 2" in text:
            asked.append(text)
            return ("transfer_call", {}) if len(asked) == 1 else ("end_call", {"goodbye": told})
        return "I can help with that."

    port = free_udp_port()
    rig = await sip_rig(AgentScript(reply=reply), trunk=f"sip:127.0.0.1:{port}", transfer="attended",
                        consult_ring_secs=1.0, media_timeout_secs=30.0)
    target = await start_sipp_uas("uas_no_answer", port, rig.workdir)
    run = await rig.sipp("attended_no_answer")
    rang = await finish_sipp(target, rig.workdir, "uas_no_answer")
    assert run.returncode == 0 and run.successful == 1, run.output
    assert "REFER sip:" not in run.messages  # the caller was never handed over
    assert rang.returncode == 0 and rang.successful == 1, rang.output  # it rang, then our CANCEL
    record = await rig.only_call()
    assert record.end_reason == "agent_hung_up" and record.transfer_to is None
    said = " ".join(t.text for t in record.turns if t.role == "assistant")
    assert -1 < said.find("Please hold while I transfer your call.") < said.find(told), said

"""builtin:transfer_to_human against the Twilio REST fake: warm transfer through a conference
(hold audio, the person hears a summary, then both are bridged), nobody answering (the agent
takes the caller back), the ring timeout, cold transfer, and web callers' webhook."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

from pipecat.frames.frames import OutputAudioRawFrame, TTSSpeakFrame
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.fakes.twilio_loopback import serve
from tests.fakes.twilio_rest import FakeTwilioRest
from voxline.integrations.tools.http import verify
from voxline.orchestration.human import HumanHandoff, leg_status
from voxline.processors.call_log import CallLog, TurnRecord
from voxline.spec import parse_spec
from voxline.transports.twilio.rest import RetryOptions, TwilioRestClient

ACCOUNT, TOKEN, CALLER = "AC" + "1" * 32, "token", "CA" + "9" * 32


def _spec(**target: Any):
    return parse_spec({"name": "front-desk", "prompt": "x", "humans": {"targets": {
        "manager": {"number": "+15550002222", "webhook": None, "ring_secs": 5, **target}}}})


@dataclass
class Worker:
    frames: list[Any] = field(default_factory=list)

    async def queue_frame(self, frame: Any) -> None:
        self.frames.append(frame)

    def said(self) -> list[str]:
        return [f.text for f in self.frames if isinstance(f, TTSSpeakFrame)]


@dataclass
class Control:
    ended: list[str] = field(default_factory=list)
    transferred: list[str] = field(default_factory=list)

    async def on_transfer(self, target: str) -> None:
        self.transferred.append(target)

    async def _ended(self, reason: str) -> None:
        self.ended.append(reason)


@dataclass
class Line:
    rest: TwilioRestClient
    call_id: str = CALLER
    heard_count: int = 0
    sample_rate: int = 8000
    epoch: int = 0
    transfers: list[str] = field(default_factory=list)

    async def wait_heard(self, text: str, *, since: int, timeout: float) -> bool:
        return True

    async def transfer(self, target: str) -> None:
        self.transfers.append(target)
        await self.rest.transfer(self.call_id, target)


@dataclass
class Incoming:
    dialed: str = "+15550001111"
    caller: str = "+15550100"


class Session:
    def __init__(self) -> None:
        self.log = CallLog(agent="front-desk")
        self.log.turns.append(TurnRecord(index=1, agent="front-desk", user_text="My order never came.",
                                         agent_text="I'm sorry to hear that."))
        self.worker, self.control, self.incoming = Worker(), Control(), Incoming()
        self.call_id, self.caller_id = CALLER, "+15550100"


async def _leg(fake: FakeTwilioRest, timeout: float = 5.0) -> str:
    for _ in range(int(timeout / 0.02)):
        legs = [sid for sid, c in fake.calls.items() if sid != CALLER]
        if legs:
            return legs[0]
        await asyncio.sleep(0.02)
    raise AssertionError("no call was placed to the person")


async def _setup(fake: FakeTwilioRest, url: str, spec, monkeypatch):
    monkeypatch.setenv("VOXLINE_PUBLIC_URL", "https://voice.example.com")
    fake.add_inbound(CALLER, To="+15550001111", From="+15550100")
    rest = TwilioRestClient(ACCOUNT, TOKEN, base_url=url, retry=RetryOptions(attempts=2, base_delay_secs=0.01))
    session = Session()
    return HumanHandoff(spec, session, line=Line(rest), channel="twilio"), session, rest


async def test_warm_transfer_holds_tells_the_person_and_bridges(monkeypatch):
    fake = FakeTwilioRest(ACCOUNT, TOKEN)
    async with serve(fake.app) as url:
        handoff, session, rest = await _setup(fake, url, _spec(), monkeypatch)
        task = asyncio.create_task(handoff.run({"reason": "a missing order"}))
        leg = await _leg(fake)
        await asyncio.sleep(1.2)  # ringing: the caller hears hold audio meanwhile
        assert leg_status(leg, "ringing") and leg_status(leg, "in-progress")
        result = await asyncio.wait_for(task, 5)
        await rest.aclose()
    person = fake.calls[leg]
    assert person.one("To") == "+15550002222" and person.one("From") == "+15550001111"
    assert person.one("StatusCallback") == "https://voice.example.com/twilio/status"
    twiml = person.one("Twiml") or ""
    assert "<Say>" in twiml and "My order never came." in twiml and "a missing order" in twiml
    assert 'startConferenceOnEnter="true"' in twiml
    room = twiml.split('beep="false">')[1].split("<")[0]
    bridged = fake.calls[CALLER].updates[-1]["Twiml"]
    assert room in bridged and 'startConferenceOnEnter="false"' in bridged
    assert result["status"] == "transferred" and result["mode"] == "warm"
    assert session.control.ended == ["transferred"] and session.control.transferred == ["+15550002222"]
    assert session.worker.said()[0] == handoff.settings.hold_message
    assert sum(isinstance(f, OutputAudioRawFrame) for f in session.worker.frames) >= 2  # hold audio


async def test_nobody_answers_and_the_agent_takes_the_caller_back(monkeypatch):
    fake = FakeTwilioRest(ACCOUNT, TOKEN)
    async with serve(fake.app) as url:
        handoff, session, rest = await _setup(fake, url, _spec(), monkeypatch)
        task = asyncio.create_task(handoff.run({}))
        leg = await _leg(fake)
        leg_status(leg, "no-answer")
        result = await asyncio.wait_for(task, 5)
        # The ring timeout: the leg is hung up.
        handoff2, session2, _ = await _setup(fake, url, _spec(ring_secs=0.4), monkeypatch)
        before = set(fake.calls)
        result2 = await asyncio.wait_for(handoff2.run({}), 5)
        await rest.aclose()
    assert result["status"] == "no answer" and result2["status"] == "no answer"
    assert not fake.calls[CALLER].updates  # the caller never left our stream
    assert session.control.ended == []
    assert session.worker.said() == [handoff.settings.hold_message, handoff.settings.no_answer]
    second = (set(fake.calls) - before).pop()
    assert fake.calls[second].updates[-1] == {"Status": "completed"}
    assert any(c.name == "guardrail:human_no_answer" for t in session.log.turns for c in t.tool_calls)


async def test_cold_transfer(monkeypatch):
    fake = FakeTwilioRest(ACCOUNT, TOKEN)
    async with serve(fake.app) as url:
        handoff, session, rest = await _setup(fake, url, _spec(mode="cold"), monkeypatch)
        result = await handoff.run({})
        await rest.aclose()
    assert result["status"] == "transferred" and "+15550002222" in fake.calls[CALLER].updates[-1]["Twiml"]
    assert session.control.ended == ["transferred"]


async def test_web_callers_request_goes_to_the_webhook_signed(monkeypatch):
    monkeypatch.setenv("HANDOFF_SECRET", "k")
    got: list[tuple[dict, bool]] = []

    async def hook(request: Request) -> Response:
        body = await request.body()
        got.append((json.loads(body), verify("k", body, request.headers.get("x-voxline-signature", ""))))
        return Response(status_code=202)

    async with serve(Starlette(routes=[Route("/handoff", hook, methods=["POST"])])) as url:
        spec = _spec(number=None, webhook=f"{url}/handoff", secret_env="HANDOFF_SECRET")
        session = Session()
        result = await HumanHandoff(spec, session, channel="web").run({"reason": "refund"})
    assert result["status"] == "requested"
    body, signed = got[0]
    assert signed and body["event"] == "handoff.requested" and body["reason"] == "refund"
    assert body["transcript"][0] == {"role": "caller", "text": "My order never came."}
    assert session.worker.said() == [spec.humans.requested]

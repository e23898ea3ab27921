"""A handoff on the phone path: the real server, a Twilio media stream on loopback, the call
host building the team; the caller hears the new agent, the stored turns name it."""

from __future__ import annotations

import asyncio

import yaml

from tests.fakes.twilio_loopback import serve
from tests.fakes.twilio_media import FakeTwilioCall
from tests.fakes.twilio_rest import FakeTwilioRest, stream_of
from tests.phone.kit import RATE, AgentScript, ScriptedLLM, ScriptedSTT, SpeechTTS, agent_yaml, silence, speech
from voxline.audio import transcribe
from voxline.pipelines.builder import Services
from voxline.server import create_app
from voxline.transports.twilio import RetryOptions, TwilioConfig, TwilioRestClient

ACCOUNT, TOKEN, SID = "AC" + "0" * 32, "test-token", "CA" + "0" * 31 + "7"


def _write(root) -> None:
    front = {**agent_yaml(AgentScript(greeting="Front desk.")), "name": "front-desk",
             "handoffs": [{"agent": "bookings", "when": "the caller wants a table",
                           "bridge": "Passing you to bookings."}]}
    bookings = {**agent_yaml(AgentScript(greeting=None)), "name": "bookings", "greeting": None,
                "tools": [{"name": "end_call", "handler": "builtin:end_call"}]}
    for spec in (front, bookings):
        (root / spec["name"]).mkdir(parents=True)
        (root / spec["name"] / "agent.yaml").write_text(yaml.safe_dump(spec))
    (root / "routes.yaml").write_text(yaml.safe_dump({"numbers": {"+15550001111": "front-desk"}}))


def _services(spec, sample_rate: int = RATE) -> Services:
    if spec.name == "front-desk":
        reply = lambda text: ("transfer_to_bookings", {}) if "table" in text else "Front desk here."  # noqa: E731
    else:
        reply = lambda text: "Bookings here, your table for two is noted."  # noqa: E731
    return Services(stt=ScriptedSTT(["I would like a table for two please"]), llm=ScriptedLLM(reply),
                    tts=SpeechTTS())


async def test_a_phone_call_is_handed_to_bookings(tmp_path):
    _write(tmp_path / "agents")
    fake = FakeTwilioRest(ACCOUNT, TOKEN)
    async with serve(fake.app) as rest_base:
        config = TwilioConfig(account_sid=ACCOUNT, auth_token=TOKEN, api_base_url=rest_base)
        rest = TwilioRestClient(ACCOUNT, TOKEN, base_url=rest_base, retry=RetryOptions(attempts=2))
        app = create_app(tmp_path / "agents", twilio=config, api_key="k", rest=rest, services=_services,
                         recording_dir=tmp_path / "rec", database_url=str(tmp_path / "voxline.db"))
        async with serve(app) as base:
            response = await fake.ring(base + "/twilio/voice", SID, from_="+15557654321", to="+15550001111")
            url, params = stream_of(response.text)
            call = FakeTwilioCall(url, call_sid=SID, account_sid=ACCOUNT, parameters=params)
            await call.connect()
            await asyncio.sleep(2.0)  # the greeting
            before = len(call.played)
            call.say(speech("I would like a table for two please") + silence(0.3))
            await call.wait_said()
            for _ in range(150):  # bounded: the answer is seven seconds of speech at most
                if len(call.played) >= before + RATE * 7:
                    break
                await asyncio.sleep(0.1)
            await asyncio.sleep(1.0)
            heard = transcribe(call.played_pcm()[before * 2:], 8000).lower()
            await call.send_stop()
            host = app.state.host
            record = await host.records.wait_closed(SID, 15)
            await host.settle()
            stored = await host.records.get(SID)
        await rest.aclose()
    # The bridge in the front desk's voice, then bookings answering the same turn.
    assert "passing you to" in heard and "here" in heard, heard
    assert record is not None
    said = " ".join(t.text for t in stored.turns if t.role == "assistant" and t.agent == "bookings")
    assert "Passing you to bookings." in said and "Bookings here" in said, said
    agents = [(t.role, t.agent) for t in stored.turns if t.role == "assistant"]
    assert ("assistant", "bookings") in agents and agents[0] == ("assistant", "front-desk"), agents
    assert any(c.name == "transfer_to_bookings" for c in stored.tool_calls)

"""A task call on the phone path: the dialer places an outbound call through the Twilio REST
fake, Twilio's answer brings the booker agent on a media stream of the real server, a
scripted restaurant talks to it, and its reported outcome comes back to the dialer."""

from __future__ import annotations

import asyncio
import time

import yaml

from tests.fakes.twilio_loopback import serve
from tests.fakes.twilio_media import FakeTwilioCall
from tests.fakes.twilio_rest import FakeTwilioRest, stream_of
from tests.phone.kit import RATE, AgentScript, ScriptedLLM, ScriptedSTT, SpeechTTS, agent_yaml, silence, speech
from voxline.orchestration.human import leg_status
from voxline.orchestration.tasks import TwilioDialer
from voxline.pipelines.builder import Services
from voxline.server import create_app
from voxline.transports.twilio import RetryOptions, TwilioConfig, TwilioRestClient

ACCOUNT, TOKEN = "AC" + "0" * 32, "test-token"
TASK = "Book a table for four on Friday at 8 pm under Tom."
RESTAURANT = ["Luigis how can I help", "Done, your confirmation is four four one seven"]
seen_prompts: list[str] = []


def _reply(text: str):
    if "confirmation" in text:
        return ("report_outcome", {"status": "done", "confirmation": "4417", "details": "four, Friday 8 pm"})
    return "Hello, I would like a table for four on Friday at eight, under Tom."


class Booker(ScriptedLLM):
    async def process_frame(self, frame, direction):
        from pipecat.frames.frames import LLMContextFrame

        if isinstance(frame, LLMContextFrame):
            seen_prompts.append(str(frame.context.get_messages()[0].get("content")))
        await super().process_frame(frame, direction)


def _write(root) -> None:
    booker = {**agent_yaml(AgentScript(greeting=None)), "name": "booker", "greeting": None,
              "tools": [{"name": "report_outcome", "handler": "builtin:report_outcome"}]}
    (root / "booker").mkdir(parents=True)
    (root / "booker" / "agent.yaml").write_text(yaml.safe_dump(booker))
    (root / "routes.yaml").write_text(yaml.safe_dump({"numbers": {"+15550001111": "booker"}}))


def _services(spec, sample_rate: int = RATE) -> Services:
    return Services(stt=ScriptedSTT(list(RESTAURANT)), llm=Booker(_reply), tts=SpeechTTS())


async def restaurant_answers(url: str, params: dict, sid: str) -> FakeTwilioCall:
    """The restaurant on the task call's stream: its two lines, the booker's ask between them."""
    call = FakeTwilioCall(url, call_sid=sid, account_sid=ACCOUNT, parameters=params)
    await call.connect()
    await asyncio.sleep(0.5)
    call.say(speech(RESTAURANT[0]) + silence(0.3))
    await call.wait_said()
    await call.wait_answered(time.monotonic())  # the booker asks for the table
    call.say(speech(RESTAURANT[1]) + silence(0.3))
    await call.wait_said()
    return call


async def test_a_task_call_over_twilio_reports_its_outcome(tmp_path):
    _write(tmp_path / "agents")
    fake = FakeTwilioRest(ACCOUNT, TOKEN)
    async with serve(fake.app) as rest_base:
        config = TwilioConfig(account_sid=ACCOUNT, auth_token=TOKEN, api_base_url=rest_base)
        rest = TwilioRestClient(ACCOUNT, TOKEN, base_url=rest_base, retry=RetryOptions(attempts=2))
        app = create_app(tmp_path / "agents", twilio=config, api_key="k", rest=rest, services=_services,
                         recording_dir=tmp_path / "rec", database_url=str(tmp_path / "voxline.db"))
        async with serve(app) as base:
            host = app.state.host
            dialer = TwilioDialer(host, rest, public_base_url=base, caller_id="+15550001111")
            dial = asyncio.create_task(dialer.dial(agent=host.agents["booker"], to="+15550003333", task=TASK,
                                                   parent_call_id="concierge-1"))
            for _ in range(250):
                if fake.calls:
                    break
                await asyncio.sleep(0.02)
            [sid] = list(fake.calls)
            response = await fake.answer(sid)  # the restaurant picks up
            url, params = stream_of(response.text)
            call = await restaurant_answers(url, params, sid)
            outcome = await asyncio.wait_for(dial, 60)
            await call.close()
            record = await host.records.wait_closed(sid, 10)
            # A task call that never connects fails at once.
            second = asyncio.create_task(dialer.dial(agent=host.agents["booker"], to="+15550004444", task=TASK,
                                                     parent_call_id="concierge-1"))
            for _ in range(250):
                if len(fake.calls) == 2:
                    break
                await asyncio.sleep(0.02)
            other = next(s for s in fake.calls if s != sid)
            assert not leg_status(other, "no-answer")  # not a person's leg: the router carries on
            failed = await asyncio.wait_for(second, 15)
        await rest.aclose()
    assert outcome == {"status": "done", "confirmation": "4417", "details": "four, Friday 8 pm"}
    assert fake.calls[sid].one("To") == "+15550003333" and "agent=booker" in (fake.calls[sid].one("Url") or "")
    assert any(TASK in p for p in seen_prompts)
    assert record is not None and record.agent == "booker" and record.direction == "outbound"
    assert failed == {"status": "failed", "details": "nobody answered"}

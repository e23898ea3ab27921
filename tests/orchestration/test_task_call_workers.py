"""A task call placed by one worker whose media stream lands on the other.

Worker A (this process) dials the task call; Twilio's answer webhook and the media
stream reach worker B (a process of its own, sharing Redis and Postgres), as behind a
load balancer. B takes the task from the live state, its agent does it with the
restaurant, and the outcome B sends to A's inbox ends A's dial, once and at once. An
outcome that is forged (a wrong token), replayed, or for a CallSid nobody placed is
ignored, and its contents are not logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sys
import time

from tests.fakes.twilio_rest import stream_of
from tests.orchestration.test_handoff_workers import _until, _worker_b, two_workers
from tests.orchestration.test_phone_task_call import RESTAURANT, TASK, Booker, restaurant_answers, seen_prompts
from tests.phone.kit import RATE, AgentScript, ScriptedSTT, SpeechTTS
from voxline.memory.live import InProcessLiveState, RedisLiveState
from voxline.orchestration.task_relay import MAX_TASK_CHARS, VALUE_KEY, _read_task, adopt_shared_task, share_task
from voxline.orchestration.tasks import TwilioDialer
from voxline.pipelines.builder import Services

TASK_AGENT = AgentScript(greeting=None, tools=[{"name": "report_outcome", "handler": "builtin:report_outcome"}])
FORGED = "<forged details>"


def _reply(text: str):
    """Reports the booking only if the task reached the agent's prompt."""
    if "confirmation" in text:
        told = any(TASK in p for p in seen_prompts)
        return ("report_outcome", {"status": "done" if told else "failed", "confirmation": "4417",
                                   "details": "four, Friday 8 pm" if told else "no task"})
    return "Hello, I would like a table for four on Friday at eight, under Tom."


def _services(spec, sample_rate: int = RATE) -> Services:
    return Services(stt=ScriptedSTT(list(RESTAURANT)), llm=Booker(_reply), tts=SpeechTTS())


@contextlib.asynccontextmanager
async def _inbox_of(redis_url: str, prefix: str, owner: str):
    """Every message sent to ``owner``'s inbox, as a list that fills while the block runs."""
    live, seen = RedisLiveState(redis_url, prefix=prefix), []

    async def read() -> None:
        async for message in live.inbox(owner):
            seen.append(message)

    task = asyncio.create_task(read())
    await asyncio.sleep(0.3)  # subscribed
    try:
        yield seen
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await live.close()


async def test_a_task_call_streamed_on_the_other_worker_reports_back_to_the_dialler(
        tmp_path, postgres_url, redis_url, caplog) -> None:
    caplog.set_level(logging.INFO, logger="voxline.orchestration")
    async with two_workers(tmp_path, postgres_url, redis_url, TASK_AGENT,
                           child="tests.orchestration.test_task_call_workers") as (bases, fake, apps):
        host_a = apps[0].state.host
        # The answer URL is B's: where the load balancer sends Twilio's webhooks and the stream.
        dialer = TwilioDialer(host_a, apps[0].state.rest, public_base_url=bases[1], caller_id="+15550001111")
        dial = asyncio.create_task(dialer.dial(agent=host_a.agents["restaurant"], to="+15550003333",
                                               task=TASK, parent_call_id="concierge-1"))
        try:
            async with _inbox_of(redis_url, host_a.live.p, host_a.owner) as inbox:
                async def placed() -> bool:
                    sids = list(fake.calls)
                    return bool(sids) and await host_a.live.owner_of("task:" + sids[0]) == host_a.owner

                await _until(placed, what="the task call's owner key")
                [sid] = list(fake.calls)
                # Outcomes nobody asked for: a wrong token for this call, and a CallSid nobody placed.
                for forged_sid in (sid, "CA<script>alert(1)</script>"):
                    await host_a.live.send(host_a.owner, {"kind": "task_outcome", "call_sid": forged_sid,
                                                          "token": "0" * 32, "status": "done", "details": FORGED})
                await asyncio.sleep(0.5)
                assert not dial.done()

                response = await fake.answer(sid)  # the restaurant picks up; Twilio asks B
                url, params = stream_of(response.text)
                assert url.startswith(bases[1].replace("http://", "ws://"))
                call = await restaurant_answers(url, params, sid)  # it does the booking
                said = time.monotonic()
                outcome = await asyncio.wait_for(dial, 30)
                took = time.monotonic() - said
                await call.close()
                await asyncio.sleep(1.0)  # any second outcome would have come by now
                [genuine] = [m for m in inbox if m.get("kind") == "task_outcome" and m.get("token") != "0" * 32]
                await host_a.live.send(host_a.owner, genuine)  # replayed after the dial ended
                await asyncio.sleep(0.5)
            record = await host_a.records.wait_closed(sid, 10)  # B closed it, in the shared store
        finally:
            dial.cancel()
    assert outcome == {"status": "done", "confirmation": "4417", "details": "four, Friday 8 pm"}
    assert took < 10.0, took  # not after the task call's timeout (180 s)
    assert genuine["call_sid"] == sid
    assert record is not None and record.direction == "outbound"
    ignored = [r.getMessage() for r in caplog.records if "task outcome ignored" in r.getMessage()]
    assert len(ignored) == 3, ignored  # wrong token, unknown CallSid, the replay
    assert not any(FORGED in m or "<script>" in m for m in ignored)


async def test_a_shared_task_is_taken_once_and_checked_before_an_agent_sees_it() -> None:
    class Host:
        live = InProcessLiveState()

    sid, token = "CA" + "1" * 32, "a" * 32
    await share_task(Host.live, sid, task=TASK, agent="restaurant", owner="a", token=token, ttl_s=60)
    assert await adopt_shared_task(Host(), None, sid, "booker") is False  # not this call's agent
    assert await Host.live.take_value(VALUE_KEY + sid) is None  # taken: no other worker adopts it
    good = {"task": TASK, "agent": "restaurant", "owner": "a", "token": token}
    assert _read_task(json.dumps(good)) == good
    for bad in ({**good, "task": "x" * (MAX_TASK_CHARS + 1)}, {**good, "task": ["a list"]}, {**good, "owner": ""},
                {**good, "token": "not hex"}, {k: v for k, v in good.items() if k != "agent"}):
        assert _read_task(json.dumps(bad)) is None, bad
    assert _read_task("not json") is None and _read_task(json.dumps([good])) is None


if __name__ == "__main__":
    asyncio.run(_worker_b(*sys.argv[1:], services=_services))

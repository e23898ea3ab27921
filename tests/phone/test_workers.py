"""Two server workers sharing one Redis and one Postgres, as behind a load balancer.

The webhook lands on one worker and the media stream on the other; a status callback
and an answering-machine verdict reach the worker that does not hold the call; caps
and call ownership hold across both.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.fakes.twilio_loopback import serve
from tests.fakes.twilio_media import FakeTwilioCall
from tests.fakes.twilio_rest import FakeTwilioRest, stream_of
from voxline.memory.live import RedisLiveState
from voxline.server import create_app
from voxline.transports.twilio import RetryOptions, TwilioConfig, TwilioRestClient

from .conftest import ACCOUNT, TOKEN
from .kit import AgentScript, fake_services, write_agents


@contextlib.asynccontextmanager
async def two_workers(tmp_path: Path, postgres_url: str, redis_url: str, script: AgentScript
                      ) -> AsyncIterator[tuple[list[str], FakeTwilioRest, list]]:
    fake = FakeTwilioRest(ACCOUNT, TOKEN)
    agents = write_agents(tmp_path / "agents", script, {"numbers": {"+15550001111": "restaurant"}})
    prefix = f"voxline-test-{uuid.uuid4().hex[:8]}:"  # this test's own keys in the shared Redis
    async with serve(fake.app) as rest_base, contextlib.AsyncExitStack() as stack:
        config = TwilioConfig(account_sid=ACCOUNT, auth_token=TOKEN, api_base_url=rest_base)
        bases, apps = [], []
        for name in ("w1", "w2"):
            rest = TwilioRestClient(ACCOUNT, TOKEN, base_url=rest_base,
                                    retry=RetryOptions(attempts=2, base_delay_secs=0.01))
            app = create_app(agents, twilio=config, api_key="k", services=fake_services(script), rest=rest,
                             database_url=postgres_url, live=RedisLiveState(redis_url, prefix=prefix),
                             owner=f"test-{name}-{uuid.uuid4().hex[:6]}", remember=False)
            bases.append(await stack.enter_async_context(serve(app)))
            apps.append(app)
        yield bases, fake, apps


@pytest.fixture
def script() -> AgentScript:
    return AgentScript(
        greeting="Hello, thanks for calling.",
        phone={"voicemail": {"action": "hang_up"}},
    )


async def greeted(call: FakeTwilioCall, timeout: float = 10) -> None:
    """Until the caller has heard half a second of the greeting (bounded polling)."""
    for _ in range(int(timeout / 0.05)):
        if len(call.played) >= 4000:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("no greeting heard")


async def ring(fake: FakeTwilioRest, base: str, sid: str) -> tuple[int, str]:
    response = await fake.ring(base + "/twilio/voice", sid, from_="+15557654321", to="+15550001111")
    return response.status_code, response.text


async def test_stream_on_another_worker_status_and_verdict_reach_it(
        tmp_path, postgres_url, redis_url, script) -> None:
    async with two_workers(tmp_path, postgres_url, redis_url, script) as (bases, fake, apps):
        sid = "CA" + uuid.uuid4().hex
        status, twiml = await ring(fake, bases[0], sid)  # the webhook reaches worker 1
        assert status == 200
        _url, params = stream_of(twiml)
        # ... and the load balancer sends the stream to worker 2.
        call = FakeTwilioCall(bases[1].replace("http://", "ws://") + "/twilio/stream", call_sid=sid,
                              account_sid=ACCOUNT, parameters=params)
        await call.connect()
        host1, host2 = apps[0].state.host, apps[1].state.host
        try:
            await greeted(call)
            assert sid in host2.calls and sid not in host1.calls
            # A second stream for the same call, sent to worker 1, is not served.
            twin = FakeTwilioCall(bases[0].replace("http://", "ws://") + "/twilio/stream", call_sid=sid,
                                  account_sid=ACCOUNT, parameters=params)
            await twin.connect()
            await twin.closed.wait()
            assert sid not in host1.calls
            # Twilio's status callback and AMD verdict reach worker 1, which does not hold
            # the call: the state is stored, the verdict forwarded to worker 2, which hangs up.
            fake.calls[sid].params["StatusCallback"] = [bases[0] + "/twilio/status"]
            assert (await fake.send_status(sid, "in-progress", AnsweredBy="machine_start")).status_code == 204
            record = await host1.records.wait_closed(sid, 15)
        finally:
            await call.close()
        assert record.end_reason == "machine" and record.answered_by == "machine_start"
        assert {"Status": "completed"} in fake.calls[sid].updates  # worker 2 hung up over REST


async def test_caps_are_shared_by_every_worker(tmp_path, postgres_url, redis_url, script) -> None:
    script = AgentScript(greeting="Hello.")
    agents_yaml = {"limits": {"max_concurrent_calls": 1}}
    async with two_workers(tmp_path, postgres_url, redis_url, script) as (bases, fake, apps):
        spec_path = tmp_path / "agents" / "restaurant" / "agent.yaml"
        assert spec_path.exists()
        # The cap is read from the agent's spec by both workers.
        for app in apps:
            host = app.state.host
            host.agents = {name: spec.model_copy(update={"limits": spec.limits.model_copy(
                update=agents_yaml["limits"])}) for name, spec in host.agents.items()}
        first, second = "CA" + uuid.uuid4().hex, "CA" + uuid.uuid4().hex
        status, twiml = await ring(fake, bases[0], first)
        assert status == 200 and "<Stream" in twiml
        _url, params = stream_of(twiml)
        call = FakeTwilioCall(bases[0].replace("http://", "ws://") + "/twilio/stream", call_sid=first,
                              account_sid=ACCOUNT, parameters=params)
        await call.connect()
        try:
            await greeted(call)
            status, busy = await ring(fake, bases[1], second)  # the other worker knows the cap
            assert status == 200 and "<Say" in busy and "busy" in busy and "<Hangup" in busy
            assert await apps[1].state.host.records.get(second) is None  # refused: nothing stored
        finally:
            await call.stop()
        await apps[0].state.host.records.wait_closed(first, 10)
        status, twiml = await ring(fake, bases[1], "CA" + uuid.uuid4().hex)  # a free line again
        assert status == 200 and "<Stream" in twiml

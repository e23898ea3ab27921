"""Graceful drain of a real worker process: SIGTERM, readiness goes false, new calls get
the busy answer, calls in progress go on; the caller who hangs up is recorded as such,
the call still running at the deadline is ended with a goodbye; the process exits."""

from __future__ import annotations

import asyncio
import signal
import time
import uuid

import httpx
import pytest

from tests.fakes.twilio_loopback import serve
from tests.fakes.twilio_media import FakeTwilioCall
from tests.fakes.twilio_rest import FakeTwilioRest, stream_of
from voxline.memory.store import open_store

from .cluster import ACCOUNT, NUMBER, TOKEN, cluster

pytestmark = pytest.mark.services


async def ring(fake: FakeTwilioRest, base: str, sid: str) -> httpx.Response:
    return await fake.ring(base + "/twilio/voice", sid, from_="+15557654321", to=NUMBER)


async def until(predicate, timeout: float) -> bool:
    for _ in range(int(timeout / 0.05)):
        if predicate():
            return True
        await asyncio.sleep(0.05)
    return predicate()


async def test_sigterm_drains_calls_then_exits(postgres_url: str, redis_url: str) -> None:
    fake = FakeTwilioRest(ACCOUNT, TOKEN)
    async with serve(fake.app) as rest_base:
        with cluster(postgres_url, redis_url, rest_base, VOXLINE_DRAIN_SECS="5") as c:
            worker = c.start_worker()
            await c.ready(worker)
            calls = []
            for _ in range(2):
                sid = "CA" + uuid.uuid4().hex
                response = await ring(fake, worker.base, sid)
                assert response.status_code == 200 and "<Stream" in response.text, response.text
                url, params = stream_of(response.text)
                call = FakeTwilioCall(url, call_sid=sid, account_sid=ACCOUNT, parameters=params)
                await call.connect()
                calls.append(call)
            hanging_up, staying = calls
            try:
                assert await until(lambda: all(len(x.played) > 4000 for x in calls), 15), worker.tail()
                worker.proc.send_signal(signal.SIGTERM)
                signalled = time.monotonic()
                async with httpx.AsyncClient(timeout=2) as client:
                    for _ in range(40):
                        if (await client.get(worker.base + "/readyz")).status_code == 503:
                            break
                        await asyncio.sleep(0.05)
                    assert (await client.get(worker.base + "/readyz")).status_code == 503
                busy = await ring(fake, worker.base, "CA" + uuid.uuid4().hex)
                assert busy.status_code == 200 and "<Say" in busy.text and "<Hangup" in busy.text
                # Both calls go on: the agent is still speaking to them after SIGTERM.
                heard = len(staying.played)
                await asyncio.sleep(1.0)
                assert len(staying.played) > heard + 4000 and not staying.closed.is_set()
                await hanging_up.stop()
                # The call still running at the deadline hears a goodbye and is ended.
                assert await until(staying.closed.is_set, 20), worker.tail()
                ended_after = time.monotonic() - signalled
                assert 4.5 < ended_after < 20, ended_after
                exit_code = await asyncio.to_thread(worker.proc.wait, 30)
            finally:
                for call in calls:
                    await call.close()
            assert exit_code in (0, -signal.SIGTERM), (exit_code, worker.tail())
            assert "Traceback" not in worker.tail(20000), worker.tail(20000)
    store = await open_store(postgres_url, migrate=False)
    try:
        first = await store.find_call(hanging_up.call_sid)
        second = await store.find_call(staying.call_sid)
    finally:
        await store.close()
    assert first is not None and first.end_reason == "caller_hung_up" and first.ended_at is not None
    assert second is not None and second.end_reason == "server_shutdown" and second.status == "completed"

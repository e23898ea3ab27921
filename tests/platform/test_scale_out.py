"""Three worker processes behind haproxy on 127.0.0.1, one Postgres, one Redis: calls
spread over the workers; one is killed mid-call and the others keep their calls; its
calls are closed as ended abnormally; a carrier status callback that reaches a worker
that does not hold the call still finds it (and its owner acts on it)."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter

import pytest

from tests.fakes.twilio_loopback import serve
from tests.fakes.twilio_media import FakeTwilioCall
from tests.fakes.twilio_rest import FakeTwilioRest, stream_of
from tests.phone.kit import silence, speech
from voxline.memory.store import open_store

from .cluster import ACCOUNT, NUMBER, TOKEN, cluster, kill

pytestmark = pytest.mark.services
CALLS = 6


async def until(predicate, timeout: float) -> bool:
    for _ in range(int(timeout / 0.05)):
        if predicate():
            return True
        await asyncio.sleep(0.05)
    return predicate()


async def test_calls_spread_survive_a_killed_worker_and_callbacks_find_them(postgres_url: str,
                                                                             redis_url: str) -> None:
    fake = FakeTwilioRest(ACCOUNT, TOKEN)
    store = await open_store(postgres_url)
    calls: list[FakeTwilioCall] = []
    async with serve(fake.app) as rest_base:
        with cluster(postgres_url, redis_url, rest_base, VOXLINE_TEST_SLOT_TTL="12",
                     VOXLINE_TEST_SWEEP="2") as c:
            workers = [c.start_worker() for _ in range(3)]
            for w in workers:
                await c.ready(w)
            c.start_lb()
            await c.lb_ready()
            try:
                for _ in range(CALLS):  # webhook and stream both through the load balancer
                    sid = "CA" + uuid.uuid4().hex
                    response = await fake.ring(c.base + "/twilio/voice", sid, from_="+15557654321", to=NUMBER)
                    assert response.status_code == 200 and "<Stream" in response.text, response.text
                    url, params = stream_of(response.text)
                    assert url.startswith(c.base.replace("http://", "ws://"))
                    call = FakeTwilioCall(url, call_sid=sid, account_sid=ACCOUNT, parameters=params)
                    await call.connect()
                    calls.append(call)
                assert await until(lambda: all(len(x.played) > 4000 for x in calls), 20)
                owners = {x.call_sid: (await store.find_call(x.call_sid)).owner for x in calls}
                per_owner = Counter(owners.values())
                assert len(per_owner) == 3, per_owner  # spread over every worker
                pids = {w.proc.pid: w for w in workers}
                victim_owner = next(o for o in per_owner)
                victim = pids[int(victim_owner.split(":")[1])]
                doomed = [x for x in calls if owners[x.call_sid] == victim_owner]
                kept = [x for x in calls if owners[x.call_sid] != victim_owner]
                kill(victim)
                # Its callers are cut off; everyone else's call goes on.
                assert await until(lambda: all(x.closed.is_set() for x in doomed), 10), (
                    [x.closed.is_set() for x in doomed], [x.closed.is_set() for x in kept], victim.proc.poll())
                # ... and goes on: the callers still talk with the agent.
                heard = {x.call_sid: len(x.played) for x in kept}
                for x in kept:
                    x.say(speech("I would like a table.") + silence(0.3))
                assert await until(lambda: all(len(x.played) > heard[x.call_sid] + 8000 for x in kept), 20)
                assert not any(x.closed.is_set() for x in kept)
                # The survivors sweep the dead worker's calls: ended abnormally.
                async def swept() -> bool:
                    records = [await store.find_call(x.call_sid) for x in doomed]
                    return all(r.status == "abandoned" and r.end_reason == "process-gone" for r in records)

                for _ in range(300):
                    if await swept():
                        break
                    await asyncio.sleep(0.1)
                assert await swept()
                # Twilio's callback for a dead worker's call lands on a live one: the call is
                # found, already closed, and stays as it was.
                fake.calls[doomed[0].call_sid].params["StatusCallback"] = [c.base + "/twilio/status"]
                assert (await fake.send_status(doomed[0].call_sid, "completed")).status_code == 204
                assert (await store.find_call(doomed[0].call_sid)).end_reason == "process-gone"
                # An answering-machine verdict for a live call, sent to a worker that does not
                # hold it: stored there, forwarded to the owner, which hangs up.
                target = kept[0]
                holder = owners[target.call_sid]
                other = next(w for w in workers if w is not victim and str(w.proc.pid) != holder.split(":")[1])
                fake.calls[target.call_sid].params["StatusCallback"] = [other.base + "/twilio/status"]
                response = await fake.send_status(target.call_sid, "in-progress", AnsweredBy="machine_start")
                assert response.status_code == 204
                for _ in range(200):
                    record = await store.find_call(target.call_sid)
                    if record.ended_at is not None:
                        break
                    await asyncio.sleep(0.1)
                assert record.answered_by == "machine_start" and record.end_reason == "machine"
                for x in kept[1:]:
                    await x.stop()
                for x in kept[1:]:
                    for _ in range(200):
                        record = await store.find_call(x.call_sid)
                        if record.ended_at is not None:
                            break
                        await asyncio.sleep(0.05)
                    assert record.end_reason == "caller_hung_up", record
            finally:
                for x in calls:
                    await x.close()
                await store.close()

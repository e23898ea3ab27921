"""A warm transfer, and a task call, whose Twilio status callbacks land on the other worker.

Two workers share one Redis and one Postgres, as behind a load balancer: worker A runs
in the test's process, worker B in a process of its own (a leg's waiter is per process,
so B must not share A's memory). The caller's stream is on A, which places the person's
leg; the leg's signed status callbacks are delivered to B, which forwards them to A: the
caller is bridged, or taken back at once when nobody answers. A task call placed by A
that B hears is "no-answer" fails at once too. A signed status for a CallSid no worker
placed does nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import yaml

from tests.fakes.twilio_loopback import serve
from tests.fakes.twilio_media import FakeTwilioCall
from tests.fakes.twilio_rest import FakeTwilioRest, stream_of
from tests.phone.conftest import ACCOUNT, TOKEN
from tests.phone.kit import AgentScript, agent_yaml, fake_services
from tests.phone.test_workers import greeted, ring
from voxline.memory.live import RedisLiveState
from voxline.orchestration.tasks import TwilioDialer
from voxline.server import create_app
from voxline.transports.twilio import RetryOptions, TwilioConfig, TwilioRestClient

PERSON = "+15550003333"
RING_SECS = 30.0


def _script() -> AgentScript:
    def reply(text: str):
        return ("transfer_to_human", {"reason": "a missing order"}) if "DTMF: 2" in text else "Sure."

    return AgentScript(greeting="Hello, thanks for calling.", reply=reply,
                       tools=[{"name": "transfer_to_human", "handler": "builtin:transfer_to_human"}])


HUMANS = {"humans": {"targets": {"manager": {"number": PERSON, "mode": "warm", "ring_secs": RING_SECS}}}}


def _app(agents: Path, rest_base: str, database_url: str, redis_url: str, prefix: str, owner: str,
         script: AgentScript | None = None, services=None):
    rest = TwilioRestClient(ACCOUNT, TOKEN, base_url=rest_base, retry=RetryOptions(attempts=2, base_delay_secs=0.01))
    config = TwilioConfig(account_sid=ACCOUNT, auth_token=TOKEN, api_base_url=rest_base)
    return create_app(agents, twilio=config, api_key="k", rest=rest, database_url=database_url,
                      services=services or (fake_services(script) if script else None), remember=False,
                      live=RedisLiveState(redis_url, prefix=prefix), owner=owner)


async def _worker_b(*args: str, services=None) -> None:
    """Worker B (``python -m tests.orchestration.test_handoff_workers ...``): serves until stdin closes."""
    async with serve(_app(Path(args[0]), *args[1:], services=services)) as base:
        print(base, flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)


@contextlib.asynccontextmanager
async def two_workers(tmp_path: Path, postgres_url: str, redis_url: str, script: AgentScript,
                      spec: dict | None = None, child: str = "tests.orchestration.test_handoff_workers",
                      ) -> AsyncIterator[tuple[list[str], FakeTwilioRest, list]]:
    """Worker A here (its app in the list), worker B in a child process (``python -m child``
    with the arguments of :func:`_worker_b`); their base URLs."""
    agents = tmp_path / "agents"
    (agents / "restaurant").mkdir(parents=True)
    (agents / "restaurant" / "agent.yaml").write_text(yaml.safe_dump({**agent_yaml(script), **(spec or {})}))
    (agents / "routes.yaml").write_text(yaml.safe_dump({"numbers": {"+15550001111": "restaurant"}}))
    prefix = f"voxline-test-{uuid.uuid4().hex[:8]}:"  # this test's own keys in the shared Redis
    fake = FakeTwilioRest(ACCOUNT, TOKEN, first_id=uuid.uuid4().int % 10**12)  # own CallSids in the shared Postgres
    async with serve(fake.app) as rest_base:
        app = _app(agents, rest_base, postgres_url, redis_url, prefix, f"test-a-{uuid.uuid4().hex[:6]}", script)
        child = await asyncio.create_subprocess_exec(
            sys.executable, "-m", child, str(agents), rest_base,
            postgres_url, redis_url, prefix, f"test-b-{uuid.uuid4().hex[:6]}",
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, cwd=Path(__file__).parents[2])
        try:
            assert child.stdout is not None and child.stdin is not None
            base_b = (await asyncio.wait_for(child.stdout.readline(), 60)).decode().strip()
            assert base_b.startswith("http://"), "worker B did not start"
            async with serve(app) as base_a:
                yield [base_a, base_b], fake, [app]
        finally:
            if child.stdin is not None:
                child.stdin.close()
            try:
                await asyncio.wait_for(child.wait(), 10)
            except TimeoutError:
                child.kill()
                await child.wait()


async def _until(check, timeout: float = 15.0, what: str = "") -> None:
    """Bounded polling for something another process does."""
    for _ in range(int(timeout / 0.05)):
        if await check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


async def _caller_asks_for_a_person(fake: FakeTwilioRest, bases: list[str], apps: list,
                                    sid: str) -> tuple[FakeTwilioCall, str]:
    """The caller's call and stream on worker A; they press 2; the person's leg placed by A."""
    status, twiml = await ring(fake, bases[0], sid)
    assert status == 200
    _url, params = stream_of(twiml)
    call = FakeTwilioCall(bases[0].replace("http://", "ws://") + "/twilio/stream", call_sid=sid,
                          account_sid=ACCOUNT, parameters=params)
    await call.connect()
    await greeted(call)
    await call.send_dtmf("2")
    host_a = apps[0].state.host

    async def leg_placed() -> bool:
        return any(c.one("To") == PERSON for c in fake.calls.values())

    await _until(leg_placed, what="the person's leg")
    leg = next(s for s, c in fake.calls.items() if c.one("To") == PERSON)

    async def leg_held() -> bool:  # A holds the leg's key: B can know where to forward
        return await host_a.live.owner_of("leg:" + leg) == host_a.owner

    await _until(leg_held, what="the leg's owner key")
    assert sid in host_a.calls
    return call, leg


def _bridges(fake: FakeTwilioRest, sid: str) -> list[str]:
    return [u["Twiml"] for u in fake.calls[sid].updates if "Twiml" in u]


async def test_the_person_answers_on_the_other_worker_and_the_caller_is_bridged(
        tmp_path, postgres_url, redis_url) -> None:
    async with two_workers(tmp_path, postgres_url, redis_url, _script(), HUMANS) as (bases, fake, apps):
        sid = "CA" + uuid.uuid4().hex
        call, leg = await _caller_asks_for_a_person(fake, bases, apps, sid)
        on_b = bases[1] + "/twilio/status"
        try:
            # Signed by Twilio, but for a call nobody placed: it bridges nothing.
            forged = "CA" + uuid.uuid4().hex
            fake.add_inbound(forged, To=PERSON, From="+15550001111")
            assert (await fake.send_status(forged, "in-progress", url=on_b)).status_code == 204
            assert (await fake.send_status(leg, "ringing", url=on_b)).status_code == 204
            await asyncio.sleep(0.5)
            assert not _bridges(fake, sid) and sid in apps[0].state.host.calls
            # The person picks up; Twilio says so twice (to B): the caller is moved once.
            for _ in range(2):
                assert (await fake.send_status(leg, "in-progress", url=on_b)).status_code == 204
            record = await apps[0].state.host.records.wait_closed(sid, 15)
            assert (await fake.send_status(leg, "completed", url=on_b)).status_code == 204
            await asyncio.sleep(0.3)
        finally:
            await call.close()
    room = (fake.calls[leg].one("Twiml") or "").split('beep="false">')[1].split("<")[0]
    [bridged] = _bridges(fake, sid)
    assert room in bridged and 'startConferenceOnEnter="false"' in bridged
    assert record.end_reason == "transferred" and record.transfer_to == PERSON
    assert not fake.calls[forged].updates


async def test_nobody_answers_on_the_other_worker_and_the_caller_is_taken_back_at_once(
        tmp_path, postgres_url, redis_url) -> None:
    async with two_workers(tmp_path, postgres_url, redis_url, _script(), HUMANS) as (bases, fake, apps):
        sid = "CA" + uuid.uuid4().hex
        call, leg = await _caller_asks_for_a_person(fake, bases, apps, sid)
        host_a = apps[0].state.host
        try:
            sent = time.monotonic()
            response = await fake.send_status(leg, "no-answer", url=bases[1] + "/twilio/status")
            assert response.status_code == 204

            async def taken_back() -> bool:
                live = host_a.calls.get(sid)
                return live is not None and any(c.name == "guardrail:human_no_answer"
                                                for t in live.session.log.turns for c in t.tool_calls)

            await _until(taken_back, timeout=RING_SECS / 3, what="the agent to take the caller back")
            took = time.monotonic() - sent
            assert fake.calls[leg].updates == [{"Status": "completed"}]  # A stopped the leg ringing
            assert not _bridges(fake, sid) and sid in host_a.calls  # the caller is still with us
        finally:
            await call.stop()
        record = await host_a.records.wait_closed(sid, 15)
    assert took < 3.0, took  # not after ring_secs (30 s)
    assert record.end_reason == "caller_hung_up"
    assert any(c.name == "guardrail:human_no_answer" for c in record.tool_calls)


async def test_a_task_call_placed_here_that_nobody_answers_fails_when_the_other_worker_hears_it(
        tmp_path, postgres_url, redis_url) -> None:
    async with two_workers(tmp_path, postgres_url, redis_url, _script()) as (bases, fake, apps):
        host_a = apps[0].state.host
        dialer = TwilioDialer(host_a, apps[0].state.rest, public_base_url=bases[0], caller_id="+15550001111")
        sent = 0.0
        dial = asyncio.create_task(dialer.dial(agent=host_a.agents["restaurant"], to="+15550004444",
                                               task="Book a table.", parent_call_id="concierge-1"))
        try:
            async def placed() -> bool:
                sids = list(fake.calls)
                return bool(sids) and await host_a.live.owner_of("task:" + sids[0]) == host_a.owner

            await _until(placed, what="the task call's owner key")
            [sid] = list(fake.calls)
            sent = time.monotonic()
            response = await fake.send_status(sid, "no-answer", url=bases[1] + "/twilio/status")
            assert response.status_code == 204
            outcome = await asyncio.wait_for(dial, 5)
        finally:
            dial.cancel()
        took = time.monotonic() - sent
        record = await host_a.records.wait_closed(sid, 5)  # B closed the record, in the shared store
    assert outcome == {"status": "failed", "details": "nobody answered"} and took < 3.0
    assert record.end_reason == "no-answer"


if __name__ == "__main__":
    asyncio.run(_worker_b(*sys.argv[1:]))

"""Scale-out: 1, 2 and 4 voxline worker processes behind haproxy on 127.0.0.1, one Postgres,
one Redis, on the fake vendor services (scripted STT/LLM, espeak TTS: tests/phone/kit).

For each size, ``--calls-per-worker`` Twilio-like calls at once through the load balancer
(signed webhook, then the media stream): the caller hears the greeting, asks a question
every 4 s (real speech, through VAD and turn detection) and hears the answers, then hangs
up. Measured per call, from the caller's side:

- send jitter: |gap between two media messages - the audio the first carried|, over the
  agent's speech (gaps over 300 ms, between utterances, are not jitter); p50/p99 over all
  calls;
- time to first audio (stream connected -> first media) and webhook latency;
- worker CPU seconds per call (utime+stime of the worker processes, /proc).

Each size runs twice in the same run, platform off (``create_app`` only) and on
(``mount_platform``: admin API, metrics, webhooks, traces off), with ``/metrics`` scraped
and ``GET /api/v1/.../calls`` asked every 0.5 s while the calls run; the ratios on/off are
the platform's cost on the call path. Prints one JSON object.

Usage: python benchmarks/scale_out.py [--sizes 1,2,4] [--calls-per-worker 4] [--rounds 1]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import numpy as np  # noqa: E402

from tests.fakes.twilio_loopback import serve  # noqa: E402
from tests.fakes.twilio_media import FakeTwilioCall  # noqa: E402
from tests.fakes.twilio_rest import FakeTwilioRest, stream_of  # noqa: E402
from tests.platform.cluster import ACCOUNT, NUMBER, TOKEN, Cluster, cluster  # noqa: E402

QUESTION = b""
MODES = ("off", "idle", "polled")
MODE_HELP = {"off": "create_app only", "idle": "mount_platform, nobody asks the API",
             "polled": "mount_platform, /metrics and the calls API asked every 0.5 s per worker"}
TARGETS = {"jitter_p99_ms_max": 20.0, "platform_cost_ratio_max": 1.02}
TICK = os.sysconf("SC_CLK_TCK")


def cpu_secs(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def jitter_ms(call: FakeTwilioCall) -> tuple[list[float], list[float]]:
    """(gap jitter, playout lateness) of every media message of the agent's speech.

    Gap jitter: |gap to the next message - the audio this one carried|. The server sends
    the first chunks of an utterance at once (a head start for the caller's buffer), so
    this counts that burst as jitter too. Playout lateness: how much later than its
    playout time a message arrived, the utterance's first message setting the clock --
    what a caller's jitter buffer has to absorb (0 when audio arrives ahead of time).
    """
    gaps, late = [], []
    arrivals = call.media_arrivals
    clock = due = 0.0
    for i, (t, n) in enumerate(arrivals):
        if i == 0 or t - arrivals[i - 1][0] > 0.3:  # a new utterance
            clock, due = t, 0.0
        late.append(max(0.0, t - (clock + due)) * 1000.0)
        due += n / 8000.0
        if i + 1 < len(arrivals) and arrivals[i + 1][0] - t <= 0.3:
            gaps.append(abs(arrivals[i + 1][0] - t - n / 8000.0) * 1000.0)
    return gaps, late


async def one_call(fake: FakeTwilioRest, base: str, listen_secs: float) -> dict:
    sid = "CA" + uuid.uuid4().hex
    t0 = time.monotonic()
    response = await fake.ring(base + "/twilio/voice", sid, from_="+15557654321", to=NUMBER)
    webhook_ms = (time.monotonic() - t0) * 1000
    if response.status_code != 200 or "<Stream" not in response.text:
        return {"ok": False, "why": response.text[:200]}
    url, params = stream_of(response.text)
    call = FakeTwilioCall(url, call_sid=sid, account_sid=ACCOUNT, parameters=params)
    await call.connect()
    connected = time.monotonic()
    try:  # the caller asks every few seconds; the agent answers
        loop = asyncio.get_running_loop()
        end = loop.time() + listen_secs
        await asyncio.sleep(3.0)
        while loop.time() < end - 3.0:
            call.say(QUESTION)
            await asyncio.sleep(4.0)
        await asyncio.sleep(max(0.0, end - loop.time()))
    finally:
        await call.stop()
        await call.close()
    first = (call.first_media_at - connected) * 1000 if call.first_media_at else None
    gaps, late = jitter_ms(call)
    return {"ok": call.first_media_at is not None, "webhook_ms": webhook_ms, "first_audio_ms": first,
            "jitter": gaps, "late": late, "audio_secs": sum(n for _t, n in call.media_arrivals) / 8000.0}


async def poll_platform(c: Cluster, stop: asyncio.Event) -> int:
    """The admin API and the metrics asked while calls run (a dashboard, a scraper)."""
    tenant, key = c.env["VOXLINE_TEST_TENANT"], c.env["VOXLINE_ADMIN_KEY"]
    n = 0
    async with httpx.AsyncClient(timeout=5, headers={"Authorization": f"Bearer {key}"}) as client:
        while not stop.is_set():
            for w in c.workers:
                with contextlib.suppress(httpx.HTTPError):
                    await client.get(w.base + "/metrics")
                    await client.get(w.base + f"/api/v1/tenants/{tenant}/calls", params={"limit": 20})
                    n += 2
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.5)
    return n


async def run_size(pg_url: str, redis_url: str, fake: FakeTwilioRest, rest_base: str, workers: int,
                   calls_per_worker: int, mode: str, listen_secs: float) -> dict:
    platform = mode != "off"
    env = {"VOXLINE_TEST_PLATFORM": "1" if platform else "0", "VOXLINE_LOG_LEVEL": "ERROR"}
    with cluster(pg_url, redis_url, rest_base, **env) as c:
        for _ in range(workers):
            c.start_worker()
        for w in c.workers:
            await ready(c, w, platform)
        if platform:  # the tenant the API is asked about
            from voxline.memory.store import open_store

            store = await open_store(pg_url, migrate=False)
            from voxline.memory.models import Tenant

            async with store._tx() as conn:
                await conn.execute(store._insert(Tenant).values(id=c.env["VOXLINE_TEST_TENANT"])
                                   .on_conflict_do_nothing())
            await store.close()
        c.start_lb("/readyz" if platform else "/healthz")  # no /readyz without the platform
        await lb_ready(c)
        await asyncio.gather(*(one_call(fake, c.base, 2.0) for _ in range(workers)))  # warm-up
        cpu0 = sum(cpu_secs(w.proc.pid) for w in c.workers)
        stop = asyncio.Event()
        poller = asyncio.create_task(poll_platform(c, stop)) if mode == "polled" else None
        results = await asyncio.gather(*(one_call(fake, c.base, listen_secs)
                                         for _ in range(workers * calls_per_worker)))
        await asyncio.sleep(1.0)  # the calls' teardown
        stop.set()
        polls = await poller if poller else 0
        cpu = sum(cpu_secs(w.proc.pid) for w in c.workers) - cpu0
    ok = [r for r in results if r["ok"]]
    jit = np.array([j for r in ok for j in r["jitter"]] or [0.0])
    late = np.array([j for r in ok for j in r["late"]] or [0.0])
    first = np.array([r["first_audio_ms"] for r in ok] or [0.0])
    hook = np.array([r["webhook_ms"] for r in ok] or [0.0])
    return {"workers": workers, "mode": mode, "calls": len(results), "calls_ok": len(ok),
            "late_p99_ms": round(float(np.percentile(late, 99)), 2),
            "late_max_ms": round(float(late.max()), 2),
            "gap_jitter_p50_ms": round(float(np.percentile(jit, 50)), 2),
            "gap_jitter_p99_ms": round(float(np.percentile(jit, 99)), 2),
            "first_audio_p50_ms": round(float(np.percentile(first, 50)), 1),
            "first_audio_p95_ms": round(float(np.percentile(first, 95)), 1),
            "webhook_p50_ms": round(float(np.percentile(hook, 50)), 1),
            "audio_secs_per_call": round(float(np.mean([r["audio_secs"] for r in ok] or [0])), 2),
            "cpu_secs_per_call": round(cpu / max(1, len(results)), 4), "platform_requests": polls}


async def ready(c: Cluster, worker, platform: bool) -> None:
    if platform:
        await c.ready(worker)
        return
    async with httpx.AsyncClient(timeout=2) as client:  # no /readyz without the platform
        for _ in range(300):
            if worker.proc.poll() is not None:
                raise RuntimeError(worker.tail())
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get(worker.base + "/healthz")).status_code == 200:
                    return
            await asyncio.sleep(0.2)
    raise TimeoutError(worker.tail())


async def lb_ready(c: Cluster) -> None:
    async with httpx.AsyncClient(timeout=2) as client:
        for _ in range(200):
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get(c.base + "/healthz")).status_code == 200:
                    await asyncio.sleep(1.0)  # every server marked up
                    return
            await asyncio.sleep(0.1)
    raise TimeoutError("haproxy is not forwarding")


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="1,2,4")
    parser.add_argument("--calls-per-worker", type=int, default=4)
    parser.add_argument("--listen-secs", type=float, default=9.0)
    parser.add_argument("--rounds", type=int, default=1, help="on/off pairs per size")
    args = parser.parse_args()
    from tests.services import RedisServer
    from voxline.memory.embedded_pg import EmbeddedPostgres
    from voxline.memory.migrate import upgrade_async

    global QUESTION
    from tests.phone.kit import silence, speech

    QUESTION = speech("I would like a table for two.") + silence(0.4)
    pg = EmbeddedPostgres(dbname="voxline_bench")
    pg.start()
    redis = RedisServer()
    fake = FakeTwilioRest(ACCOUNT, TOKEN)
    runs = []
    try:
        await upgrade_async(pg.url)
        async with serve(fake.app) as rest_base:
            for size in [int(s) for s in args.sizes.split(",")]:
                for _ in range(args.rounds):
                    for mode in MODES:
                        runs.append(await run_size(pg.url, redis.url, fake, rest_base, size, args.calls_per_worker,
                                                   mode, args.listen_secs))
                        print(json.dumps(runs[-1]), file=sys.stderr)
    finally:
        redis.stop()
        pg.cleanup()
    summary = {}
    for size in sorted({r["workers"] for r in runs}):
        by_mode = {m: [r for r in runs if r["workers"] == size and r["mode"] == m] for m in MODES}

        def ratio(mode: str, key: str, by_mode: dict = by_mode) -> float:
            on = float(np.mean([r[key] for r in by_mode[mode]]))
            return round(on / max(1e-9, float(np.mean([r[key] for r in by_mode["off"]]))), 3)

        rows = [r for m in MODES for r in by_mode[m]]
        summary[str(size)] = {
            "calls": sum(r["calls"] for r in rows), "calls_ok": sum(r["calls_ok"] for r in rows),
            "late_p99_ms": max(r["late_p99_ms"] for r in rows),
            "gap_jitter_p99_ms": max(r["gap_jitter_p99_ms"] for r in rows),
            "on_off": {mode: {"cpu_per_call": ratio(mode, "cpu_secs_per_call"),
                              "first_audio_p50": ratio(mode, "first_audio_p50_ms"),
                              "webhook_p50": ratio(mode, "webhook_p50_ms"),
                              "late_p99": ratio(mode, "late_p99_ms")} for mode in MODES if mode != "off"},
        }
    worst_late = max(s["late_p99_ms"] for s in summary.values())
    worst_cost = max(s["on_off"]["idle"]["cpu_per_call"] for s in summary.values())
    print(json.dumps({
        "benchmark": "scale_out", "machine": {"cpus": os.cpu_count()}, "calls_per_worker": args.calls_per_worker,
        "listen_secs": args.listen_secs, "modes": MODE_HELP, "by_workers": summary, "runs": runs,
        "targets": {**TARGETS, "jitter_ok": worst_late < TARGETS["jitter_p99_ms_max"],
                    "platform_cost_ok": worst_cost <= TARGETS["platform_cost_ratio_max"]},
    }, indent=2))


if __name__ == "__main__":
    asyncio.run(main())

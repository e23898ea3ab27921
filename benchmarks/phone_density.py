"""Phone call density: N concurrent simulated Twilio calls against one server process.

The server (one or more subprocesses running uvicorn on 127.0.0.1, sharing the port with
SO_REUSEPORT) runs ``voxline.server.create_app``: a real CallSession per call (Silero VAD,
turn detection, context aggregators, heard-text gate, DTMF) with fake STT/LLM/TTS of
fixed latency; the greeting comes from the server's greeting cache after a warm-up call.
Each call takes the real path: a signed voice webhook, whose TwiML names the stream and
its per-call token, then a signed media stream that presents the token. Each client
streams real speech in real time and plays agent audio back in real time, echoing marks.
Calls are recorded in a SQLite file per server process (``--database-url`` to share one,
e.g. Postgres). Prints one JSON object.

Jitter = how late each agent audio chunk arrives relative to an ideal real-time schedule
anchored at the first chunk of its talkspurt (early arrival is fine: Twilio buffers).

Usage: python benchmarks/phone_density.py [--ns 10,50,100,200] [--secs 15] [--workers 2]
       [--ramp-secs 0] [--stream-options '{"out_chunk_ms": 80}'] [--database-url URL]

On the 2-core target use ``--workers 2`` (one event loop per core, as ``voxline serve``
does). ``jitter_p99_ms_after_greeting`` leaves out each call's first talkspurt, which
plays while all N calls are being set up at once when ``--ramp-secs`` is 0.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import sys
import time
import uuid

import httpx

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

GREETING = "Hello, thanks for calling."
ANSWER = "We are open every day from nine until eleven."
QUESTION = "When are you open?"
ACCOUNT = "AC" + "0" * 32
TOKEN = "bench-token"
NUMBER = "+15550001111"
CALLER = "+15557654321"


def serve(port: int, shared_vad: bool, stream_options: dict | None = None,
          database_url: str | None = None) -> None:
    """One server process: ``voxline.server.create_app`` with fake STT/LLM/TTS.

    The stream tokens' secret comes from the parent's ``VOXLINE_SECRET``, so every
    process accepts the streams the others' webhooks announced (as ``voxline serve``).
    """
    import tempfile
    from pathlib import Path

    import uvicorn

    from tests.fakes.twilio_loopback import WS_MAX_SIZE
    from tests.phone.kit import AgentScript, fake_services, speech, write_agents
    from voxline.pipelines.limits import CallLimits
    from voxline.server import create_app, quiet_pipecat_logs
    from voxline.transports.twilio import TwilioConfig

    if shared_vad:
        # The builder change requested in the report: one Silero ONNX session per process.
        from pipecat.audio.vad.vad_analyzer import VADParams

        from voxline.integrations.providers.local.silero import SharedSileroVADAnalyzer
        from voxline.pipelines import builder

        def vad_analyzer(spec):  # noqa: ANN001, ANN202
            v = spec.vad
            return SharedSileroVADAnalyzer(params=VADParams(
                confidence=v.confidence, start_secs=v.start_secs, stop_secs=v.stop_secs,
                min_volume=v.min_volume))

        builder.vad_analyzer = vad_analyzer

    script = AgentScript(
        greeting=GREETING, transcripts=[QUESTION] * 4, reply=lambda _: ANSWER,
        stt_latency=0.15, llm_latency=0.2, tts_latency=0.05,
        tts_cache={GREETING: speech(GREETING), ANSWER: speech(ANSWER)},
    )
    tmp = Path(tempfile.mkdtemp())
    agents = write_agents(tmp / "agents", script, {"numbers": {NUMBER: "restaurant"}})
    config = TwilioConfig(account_sid=ACCOUNT, auth_token=TOKEN)
    app = create_app(agents, twilio=config, api_key="bench", services=fake_services(script),
                     remember=False,  # no recall or summaries: the call path, not memory
                     database_url=database_url or str(tmp / "voxline.db"),
                     limits=CallLimits(max_calls_per_worker=100_000), stream_options=stream_options)
    # SO_REUSEPORT: several server processes share the port; the kernel spreads calls.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(("127.0.0.1", port))
    quiet_pipecat_logs("WARNING")
    # As voxline.server.serve runs uvicorn (message bound, no proxy headers).
    server = uvicorn.Server(uvicorn.Config(app, log_level="error", ws="websockets", lifespan="on",
                                           ws_per_message_deflate=False, ws_max_size=WS_MAX_SIZE,
                                           proxy_headers=False))
    asyncio.run(server.serve(sockets=[sock]))


def proc_stats(pids: list[int]) -> tuple[float, int]:
    """(cpu seconds, rss bytes) summed over server processes, from /proc."""
    cpu, rss = 0.0, 0
    for pid in pids:
        c, r = _proc_stats(pid)
        cpu, rss = cpu + c, rss + r
    return cpu, rss


def _proc_stats(pid: int) -> tuple[float, int]:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = (int(fields[11]) + int(fields[12])) / ticks
    with open(f"/proc/{pid}/status") as f:
        rss = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmRSS"))
    return cpu, rss


def jitter_ms(arrivals: list[tuple[float, int]], skip_spurts: int = 0) -> list[float]:
    """Lateness of each chunk; ``skip_spurts`` leaves out the first talkspurts (the greeting)."""
    late: list[float] = []
    spurt = -1
    t0, audio = None, 0.0
    prev = None
    for at, nbytes in arrivals:
        if prev is None or at - prev > 0.3:  # new talkspurt
            t0, audio = at, 0.0
            spurt += 1
        if spurt >= skip_spurts:
            late.append(max(0.0, (at - (t0 + audio)) * 1000))
        audio += nbytes / 8000
        prev = at
    return late


async def ring(client, base: str, sid: str):  # noqa: ANN001, ANN201
    """Twilio's signed voice webhook for an inbound call, then the media-stream client
    its TwiML asks for (stream URL and <Parameter>s, the per-call token among them)."""
    from twilio.request_validator import RequestValidator

    from tests.fakes.twilio_media import FakeTwilioCall
    from tests.fakes.twilio_rest import stream_of

    url = base + "/twilio/voice"
    params = {"CallSid": sid, "AccountSid": ACCOUNT, "From": CALLER, "To": NUMBER,
              "CallStatus": "ringing", "Direction": "inbound", "ApiVersion": "2010-04-01"}
    signature = RequestValidator(TOKEN).compute_signature(url, params)
    response = await client.post(url, data=params, headers={"X-Twilio-Signature": signature})
    if response.status_code != 200:
        raise RuntimeError(f"voice webhook answered {response.status_code}: {response.text[:200]}")
    stream, parameters = stream_of(response.text)
    return FakeTwilioCall(stream, call_sid=sid, stream_sid="MZ" + sid[2:], account_sid=ACCOUNT,
                          parameters=parameters, auth_token=TOKEN)


def new_sid() -> str:
    return "CA" + uuid.uuid4().hex


async def run_calls(n: int, secs: float, port: int, pids: list[int], ramp_secs: float = 0.0) -> dict:
    from tests.fakes.twilio_media import FakeTwilioCall
    from tests.phone.kit import silence, speech

    base = f"http://127.0.0.1:{port}"
    question = speech(QUESTION) + silence(0.4)
    calls: list[FakeTwilioCall] = []
    webhook_ms: list[float] = []
    failed: list[str] = []
    cpu0, rss0 = proc_stats(pids)
    await asyncio.sleep(0)
    t0 = time.monotonic()

    async def connect(client: httpx.AsyncClient, i: int) -> None:
        await asyncio.sleep(ramp_secs * i / n)  # 0: every call at once (a connection storm)
        try:
            rung = time.monotonic()
            call = await ring(client, base, new_sid())
            webhook_ms.append((time.monotonic() - rung) * 1000)
            await call.connect()
            calls.append(call)
        except Exception as e:
            failed.append(f"{type(e).__name__}: {e}"[:200])

    async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=None)) as client:
        await asyncio.gather(*(connect(client, i) for i in range(n)))

    async def talk(c: FakeTwilioCall) -> None:
        await asyncio.sleep(3.0)
        while time.monotonic() - t0 < secs - 4:
            c.say(question)
            await asyncio.sleep(5.0)

    talkers = [asyncio.create_task(talk(c)) for c in calls]
    await asyncio.sleep(secs)
    for t in talkers:
        t.cancel()
    cpu1, rss1 = proc_stats(pids)
    wall = time.monotonic() - t0
    await asyncio.gather(*(c.stop() for c in calls), return_exceptions=True)
    late = sorted(x for c in calls for x in jitter_ms(c.media_arrivals))
    # Without each call's first talkspurt: the greeting plays while all N calls are
    # being set up at once (a connection storm real traffic does not have).
    late_steady = sorted(x for c in calls for x in jitter_ms(c.media_arrivals, skip_spurts=1))
    starts = sorted((c.first_media_at - c.start_sent_at) * 1000 for c in calls
                    if c.first_media_at and c.start_sent_at)
    # A call "completes" when it heard the greeting and at least one answer.
    complete = sum(1 for c in calls if len(c.played) > 8000 * 3)

    def pct(xs: list[float], p: float) -> float | None:
        return round(xs[min(len(xs) - 1, int(p * len(xs)))], 1) if xs else None

    webhook_ms.sort()
    return {
        "n": n,
        "cpu_per_call_pct": round((cpu1 - cpu0) / wall / n * 100, 2),
        "rss_per_call_mb": round((rss1 - rss0) / n / 2**20, 2),
        "server_rss_mb": round(rss1 / 2**20, 1),
        "jitter_p99_ms": pct(late, 0.99),
        "jitter_p50_ms": pct(late, 0.5),
        "jitter_p99_ms_after_greeting": pct(late_steady, 0.99),
        "webhook_ms_p50": pct(webhook_ms, 0.5),
        "webhook_ms_p99": pct(webhook_ms, 0.99),
        "start_to_first_audio_ms_p50": pct(starts, 0.5),
        "start_to_first_audio_ms_p99": pct(starts, 0.99),
        "calls_failed_to_start": len(failed),
        "first_failure": failed[0] if failed else None,
        "calls_complete": complete,
        "calls_all_complete": complete == n,
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def until(predicate, timeout: float, step: float = 0.02) -> bool:  # noqa: ANN001
    """Poll ``predicate`` until true or ``timeout`` seconds have passed."""
    for _ in range(max(1, int(timeout / step))):
        if predicate():
            return True
        await asyncio.sleep(step)
    return bool(predicate())


async def warm_up(port: int, calls: int) -> None:
    """A few short calls first, so each server process has its greeting cached."""
    for _ in range(calls):
        async with httpx.AsyncClient(timeout=30) as client:
            c = await ring(client, f"http://127.0.0.1:{port}", new_sid())
        await c.connect()
        await until(lambda c=c: c.first_media_at is not None, 10)
        await asyncio.sleep(2.5)  # let the greeting finish so it is cached
        await c.stop()


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--ns", default="10,50,100,200")
    ap.add_argument("--secs", type=float, default=15.0)
    ap.add_argument("--workers", type=int, default=1, help="server processes sharing the port")
    ap.add_argument("--shared-vad", action="store_true",
                    help="one Silero session per process (the requested builder change)")
    ap.add_argument("--stream-options", default=None,
                    help='JSON keywords for TwilioCall.create, e.g. {"inbound_batch_ms": 80}')
    ap.add_argument("--ramp-secs", type=float, default=0.0,
                    help="spread the N call starts over this many seconds (default: all at once)")
    ap.add_argument("--database-url", default=None,
                    help="one call store for every server process (default: a SQLite file each)")
    ap.add_argument("--serve", type=int)
    args = ap.parse_args()
    from voxline.transports import call_token

    call_token.server_secret()  # one token secret, exported to every server process
    results = []
    for n in (int(x) for x in args.ns.split(",")):
        port = free_port()
        cmd = [sys.executable, __file__, "--serve", str(port)] + (["--shared-vad"] if args.shared_vad else [])
        if args.stream_options:
            cmd += ["--stream-options", args.stream_options]
        if args.database_url:
            cmd += ["--database-url", args.database_url]
        servers = [await asyncio.create_subprocess_exec(*cmd, stdout=asyncio.subprocess.DEVNULL,
                                                        stderr=asyncio.subprocess.DEVNULL)
                   for _ in range(args.workers)]
        try:
            for _ in range(300):
                try:
                    socket.create_connection(("127.0.0.1", port), 0.1).close()
                    break
                except OSError:
                    await asyncio.sleep(0.1)
            await asyncio.sleep(1.0 * args.workers)  # every process listening
            await warm_up(port, 2 * args.workers)
            result = await run_calls(n, args.secs, port, [s.pid for s in servers], args.ramp_secs)
            results.append({"workers": args.workers, "shared_vad": args.shared_vad, "ramp_secs": args.ramp_secs,
                            "stream_options": json.loads(args.stream_options or "{}"), **result})
        finally:
            for server in servers:
                server.terminate()
            for server in servers:
                await asyncio.wait_for(server.wait(), 10)
    ok = [r["n"] for r in results if r["calls_all_complete"]
          and r["jitter_p99_ms"] is not None and r["jitter_p99_ms"] < 20]
    print(json.dumps({"machine_cpus": os.cpu_count(), "secs_per_run": args.secs,
                      "results": results, "max_n_jitter_p99_under_20ms": max(ok, default=None)}))


def _option(name: str) -> str | None:
    return sys.argv[sys.argv.index(name) + 1] if name in sys.argv else None


if __name__ == "__main__":
    if "--serve" in sys.argv:
        options = _option("--stream-options")
        serve(int(sys.argv[sys.argv.index("--serve") + 1]), "--shared-vad" in sys.argv,
              json.loads(options) if options else None, _option("--database-url"))
    else:
        asyncio.run(main())

"""Phone call density: N concurrent simulated Twilio calls against one server process.

The server (one or more subprocesses running uvicorn on 127.0.0.1, sharing the port with
SO_REUSEPORT) runs ``voxline.server.create_app``: a real CallSession per call (Silero VAD,
turn detection, context aggregators, heard-text gate, DTMF) with fake STT/LLM/TTS of
fixed latency; the greeting comes from the server's greeting cache after a warm-up call. Each client streams real speech in real time and plays agent
audio back in real time, echoing marks. Prints one JSON object.

Jitter = how late each agent audio chunk arrives relative to an ideal real-time schedule
anchored at the first chunk of its talkspurt (early arrival is fine: Twilio buffers).

Usage: python benchmarks/phone_density.py [--ns 10,50,100,200] [--secs 15] [--workers 2]
       [--ramp-secs 0] [--stream-options '{"out_chunk_ms": 80}']

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
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

GREETING = "Hello, thanks for calling."
ANSWER = "We are open every day from nine until eleven."
QUESTION = "When are you open?"


def serve(port: int, shared_vad: bool, stream_options: dict | None = None) -> None:
    """One server process: ``voxline.server.create_app`` with fake STT/LLM/TTS."""
    import tempfile
    from pathlib import Path

    import uvicorn

    from tests.phone.kit import AgentScript, fake_services, speech, write_agents
    from voxline.server import create_app, quiet_pipecat_logs
    from voxline.transports.twilio import InMemoryCallRecords, TwilioConfig

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
    agents = write_agents(Path(tempfile.mkdtemp()), script, {"numbers": {"+15550001111": "restaurant"}})
    config = TwilioConfig(account_sid="AC0", auth_token="tok")
    app = create_app(agents, twilio=config, api_key="bench", services=fake_services(script),
                     remember=False,  # the transport and pipeline, not the database
                     records=InMemoryCallRecords(), verify_stream_signature=False,
                     stream_options=stream_options)
    # SO_REUSEPORT: several server processes share the port; the kernel spreads calls.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(("127.0.0.1", port))
    quiet_pipecat_logs("WARNING")
    server = uvicorn.Server(uvicorn.Config(app, log_level="error", ws="websockets", lifespan="off",
                                           ws_per_message_deflate=False))
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


async def run_calls(n: int, secs: float, port: int, pids: list[int], ramp_secs: float = 0.0) -> dict:
    from tests.fakes.twilio_media import FakeTwilioCall
    from tests.phone.kit import silence, speech

    url = f"ws://127.0.0.1:{port}/twilio/stream"
    question = speech(QUESTION) + silence(0.4)
    calls = [FakeTwilioCall(url, call_sid=f"CA{i:032d}", stream_sid=f"MZ{i:032d}",
                            parameters={"agent": "restaurant"}, auth_token=None) for i in range(n)]
    cpu0, rss0 = proc_stats(pids)
    await asyncio.sleep(0)
    t0 = time.monotonic()
    async def connect(i: int, c: FakeTwilioCall) -> None:
        await asyncio.sleep(ramp_secs * i / n)  # 0: every call at once (a connection storm)
        await c.connect()

    await asyncio.gather(*(connect(i, c) for i, c in enumerate(calls)))

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

    return {
        "n": n,
        "cpu_per_call_pct": round((cpu1 - cpu0) / wall / n * 100, 2),
        "rss_per_call_mb": round((rss1 - rss0) / n / 2**20, 2),
        "server_rss_mb": round(rss1 / 2**20, 1),
        "jitter_p99_ms": pct(late, 0.99),
        "jitter_p50_ms": pct(late, 0.5),
        "jitter_p99_ms_after_greeting": pct(late_steady, 0.99),
        "start_to_first_audio_ms_p50": pct(starts, 0.5),
        "start_to_first_audio_ms_p99": pct(starts, 0.99),
        "calls_complete": complete,
        "calls_all_complete": complete == n,
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def warm_up(port: int, calls: int) -> None:
    """A few short calls first, so each server process has its greeting cached."""
    from tests.fakes.twilio_media import FakeTwilioCall

    url = f"ws://127.0.0.1:{port}/twilio/stream"
    for i in range(calls):
        c = FakeTwilioCall(url, call_sid=f"CW{i:032d}", stream_sid=f"MW{i:032d}",
                           parameters={"agent": "restaurant"}, auth_token=None)
        await c.connect()
        deadline = time.monotonic() + 10
        while c.first_media_at is None and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
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
    ap.add_argument("--serve", type=int)
    args = ap.parse_args()
    results = []
    for n in (int(x) for x in args.ns.split(",")):
        port = free_port()
        cmd = [sys.executable, __file__, "--serve", str(port)] + (["--shared-vad"] if args.shared_vad else [])
        if args.stream_options:
            cmd += ["--stream-options", args.stream_options]
        servers = [subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
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
                server.wait(10)
    ok = [r["n"] for r in results if r["calls_all_complete"]
          and r["jitter_p99_ms"] is not None and r["jitter_p99_ms"] < 20]
    print(json.dumps({"machine_cpus": os.cpu_count(), "secs_per_run": args.secs,
                      "results": results, "max_n_jitter_p99_under_20ms": max(ok, default=None)}))


if __name__ == "__main__":
    if "--serve" in sys.argv:
        options = json.loads(sys.argv[sys.argv.index("--stream-options") + 1]) if "--stream-options" in sys.argv else None
        serve(int(sys.argv[sys.argv.index("--serve") + 1]), "--shared-vad" in sys.argv, options)
    else:
        asyncio.run(main())

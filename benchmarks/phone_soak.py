"""Phone soak: hundreds of Twilio-like calls through the real entry point on the real local models.

Runs ``voxline serve --agents DIR --port P --workers 1`` as a subprocess (the CLI a
deployment runs; it loads the models at startup) with an agent on Whisper base, Piper
and Silero VAD whose LLM is ``openai_compatible`` pointed at a fake OpenAI server on
loopback (tests/fakes/openai_chat.py), so pipecat's real OpenAI service speaks the real
protocol. Twilio's REST API is a fake on loopback too (TWILIO_API_BASE_URL). Each call is
what Twilio does: the signed voice webhook, then a media stream with the TwiML's
parameters (per-call token) streaming in real time; the caller hears the greeting out,
asks a recorded LibriVox question (8 kHz), waits for the first audio of the answer and
hangs up (`stop`).

Phases: warm-up calls; ``--sequential`` calls one after another (server RSS sampled
after each, from /proc/PID/status VmRSS); ``--concurrent`` calls started at once while
``/healthz`` is polled every 20 ms. The idle server's ``/healthz`` latency is the baseline.
Prints one JSON object; ``targets`` says what passed. A caller asks once no agent
audio arrived for 0.8 s; ``talked_over`` counts calls where agent audio still arrived
while it asked (a stalled greeting), and their answer is timed from the question's end.

The server's event-loop lag cannot be read from outside the process; ``/healthz``
latency is its proxy (an event loop that stalls answers late). The benchmark's own
loop lag is reported so that a slow client is not mistaken for a slow server.

Usage: python benchmarks/phone_soak.py [--sequential 200] [--concurrent 20] [--warmup 5]
Takes about 5 s per sequential call (~20 min for the defaults).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import numpy as np  # noqa: E402

from tests.fakes.twilio_loopback import serve  # noqa: E402
from tests.fakes.twilio_rest import FakeTwilioRest  # noqa: E402
from tests.phone import live_kit as kit  # noqa: E402

TARGETS = {"rss_per_call_mb_max": 2.0, "healthz_p99_ms_max": 100.0}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def voxline_cmd() -> list[str]:
    exe = Path(sys.executable).with_name("voxline")
    return [str(exe)] if exe.exists() else [shutil.which("voxline") or "voxline"]


def tail(path: Path, n: int = 2000) -> str:
    return path.read_text(errors="replace")[-n:] if path.exists() else ""


@contextlib.asynccontextmanager
async def server(agents: Path, port: int, env: dict[str, str], log_path: Path,
                 startup_timeout: float) -> AsyncIterator[tuple[asyncio.subprocess.Process, float]]:
    """``voxline serve`` in a subprocess; yields (process, seconds until /healthz answered)."""
    cmd = [*voxline_cmd(), "serve", "--agents", str(agents), "--port", str(port),
           "--workers", "1", "--log-level", "warning"]
    with log_path.open("wb") as log:
        proc = await asyncio.create_subprocess_exec(*cmd, env=env, stdout=log, stderr=subprocess.STDOUT,
                                                    cwd=agents.parent)
        started = time.monotonic()
        try:
            async with httpx.AsyncClient(timeout=2) as client:
                while True:
                    if proc.returncode is not None:
                        raise RuntimeError(f"server exited ({proc.returncode}): {tail(log_path)}")
                    with contextlib.suppress(httpx.HTTPError):
                        if (await client.get(f"http://127.0.0.1:{port}/healthz")).status_code == 200:
                            break
                    if time.monotonic() - started > startup_timeout:
                        raise TimeoutError(f"server not up after {startup_timeout} s")
                    await asyncio.sleep(0.1)
            yield proc, time.monotonic() - started
        finally:
            if proc.returncode is None:
                proc.send_signal(signal.SIGINT)
                try:
                    await asyncio.wait_for(proc.wait(), 20)
                except TimeoutError:
                    proc.kill()
                    await proc.wait()


class Poller:
    """GET /healthz every ``interval`` s (sequentially: a stalled answer is one late sample)."""

    def __init__(self, base: str, interval: float = 0.02) -> None:
        self.base, self.interval = base, interval
        self.samples: list[tuple[float, float]] = []  # (monotonic, latency ms)
        self.errors = 0
        self.active_max = 0

    async def run(self, stop: asyncio.Event) -> None:
        async with httpx.AsyncClient(timeout=10) as client:
            next_at = time.monotonic()
            while not stop.is_set():
                t0 = time.monotonic()
                try:
                    response = await client.get(self.base + "/healthz")
                    self.active_max = max(self.active_max, int(response.json().get("active_calls", 0)))
                    self.samples.append((t0, (time.monotonic() - t0) * 1000))
                except (httpx.HTTPError, ValueError):
                    self.errors += 1
                next_at += self.interval
                await asyncio.sleep(max(0.0, next_at - time.monotonic()))
                next_at = max(next_at, time.monotonic() - self.interval)

    def stats(self, since: float = 0.0, until: float = float("inf")) -> dict[str, float | int | None]:
        values = [ms for at, ms in self.samples if since <= at <= until]
        return {"n": len(values), "p50_ms": kit.percentile(values, 50), "p99_ms": kit.percentile(values, 99),
                "max_ms": round(max(values), 1) if values else None}


class LoopLag:
    """This process's own event-loop lag (the client side of the benchmark)."""

    def __init__(self, interval: float = 0.01) -> None:
        self.interval, self.lags = interval, [0.0]

    async def run(self) -> None:
        while True:
            t0 = time.monotonic()
            await asyncio.sleep(self.interval)
            self.lags.append((time.monotonic() - t0 - self.interval) * 1000)


async def idle(base: str, timeout: float = 30) -> bool:
    """Until the server holds no call (False: it still did after ``timeout``, or is gone)."""
    async with httpx.AsyncClient(timeout=5) as client:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError, ValueError):
                if (await client.get(base + "/healthz")).json().get("active_calls") == 0:
                    return True
            await asyncio.sleep(0.05)
    return False


def caller(i: int) -> str:
    return f"+1555{2000000 + i:07d}"


def call_stats(timings: list[kit.CallTiming]) -> dict[str, object]:
    ok = [t for t in timings if t.ok]
    greet = [t.greeting_ms for t in ok if t.greeting_ms is not None]
    answer = [t.answer_ms for t in ok if t.answer_ms is not None]
    start_answer = [t.answer_from_start_ms for t in ok if t.answer_from_start_ms is not None]
    webhook = [t.webhook_ms for t in timings if t.webhook_ms is not None]
    errors = sorted({t.error for t in timings if t.error})
    return {
        "completed": len(ok), "failed": len(timings) - len(ok),
        "talked_over": sum(t.talked_over for t in timings),
        "webhook_ms": {"p50": kit.percentile(webhook, 50), "p99": kit.percentile(webhook, 99)},
        "start_to_greeting_ms": {"p50": kit.percentile(greet, 50), "p99": kit.percentile(greet, 99)},
        "question_end_to_answer_ms": {"p50": kit.percentile(answer, 50), "p99": kit.percentile(answer, 99)},
        "start_to_answer_ms": {"p50": kit.percentile(start_answer, 50), "p99": kit.percentile(start_answer, 99)},
        **({"errors": errors[:5]} if errors else {}),
    }


def slope(ys: list[float]) -> float | None:
    """Least-squares MB per call over samples taken after each call."""
    if len(ys) < 2:
        return None
    return float(np.polyfit(np.arange(len(ys)), np.asarray(ys), 1)[0])


async def run(args: argparse.Namespace) -> dict[str, object]:
    load_before = os.getloadavg()
    question = kit.clip(args.question)
    work = Path(tempfile.mkdtemp(prefix="voxline-soak-"))
    llm = kit.fake_llm()
    rest = FakeTwilioRest(kit.ACCOUNT, kit.TOKEN)
    lag = LoopLag()
    lag_task = asyncio.create_task(lag.run())
    try:
        async with serve(llm.app()) as llm_base, serve(rest.app) as rest_base:
            turn = {"strategy": "smart_turn"} if args.smart_turn else None
            agents = kit.write_real_agents(work / "agents", llm_base + "/v1", turn=turn)
            env = {k: v for k, v in os.environ.items()
                   if k not in ("REDIS_URL", "VOXLINE_PUBLIC_URL", "VOXLINE_TRUST_PROXY")}
            env.update({
                "TWILIO_ACCOUNT_SID": kit.ACCOUNT, "TWILIO_AUTH_TOKEN": kit.TOKEN,
                "TWILIO_API_BASE_URL": rest_base, "VOXLINE_SECRET": "soak-" + os.urandom(16).hex(),
                "DATABASE_URL": str(work / "voxline.db"), "VOXLINE_API_KEY": "soak",
            })
            port = args.port or free_port()
            base = f"http://127.0.0.1:{port}"
            async with server(agents, port, env, work / "server.log", args.startup_timeout) as (proc, up_secs):
                rss_start = kit.rss_mb(proc.pid)
                # Baseline: the idle server's /healthz.
                stop = asyncio.Event()
                idle_poll = Poller(base)
                task = asyncio.create_task(idle_poll.run(stop))
                await asyncio.sleep(args.idle_secs)
                stop.set()
                await task

                async def one(i: int) -> kit.CallTiming:
                    return await kit.question_call(rest, base, question.pcm, from_=caller(i),
                                                   timeout=args.call_timeout)

                warm = [await one(i) for i in range(args.warmup)]
                not_idle = int(not await idle(base))
                rss_warm = kit.rss_mb(proc.pid)

                sequential, rss_after_each = [], []
                for i in range(args.sequential):
                    if proc.returncode is not None:
                        break  # the server died: report what was measured
                    sequential.append(await one(args.warmup + i))
                    not_idle += not await idle(base)
                    rss_after_each.append(kit.rss_mb(proc.pid))
                    if args.progress and (i + 1) % 20 == 0:
                        print(f"{i + 1}/{args.sequential} calls, RSS {rss_after_each[-1]:.0f} MB",
                              file=sys.stderr, flush=True)
                rss_seq = kit.rss_mb(proc.pid)

                # Burst: all calls at once, /healthz polled meanwhile.
                stop = asyncio.Event()
                poll = Poller(base)
                poll_task = asyncio.create_task(poll.run(stop))
                await asyncio.sleep(0.5)
                lag_from = len(lag.lags)
                burst_at = time.monotonic()
                first = args.warmup + args.sequential
                burst = await asyncio.gather(*(one(first + i) for i in range(args.concurrent)))
                stop.set()
                await poll_task
                burst_lag = lag.lags[lag_from:]
                not_idle += not await idle(base, 60)
                rss_end = kit.rss_mb(proc.pid)
                server_alive = proc.returncode is None
                log_tail = tail(work / "server.log", 1500)
    finally:
        lag_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await lag_task
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)

    # The burst's start: until every call heard its greeting (or 10 s).
    greeted = [t.greeting_ms for t in burst if t.greeting_ms is not None]
    start_window = burst_at + min(10.0, (max(greeted) / 1000 + 1.0) if greeted else 10.0)
    idle_stats = idle_poll.stats()
    start_stats = poll.stats(burst_at, start_window)
    whole_stats = poll.stats(burst_at)
    per_call = slope(rss_after_each)
    ratio = (round(start_stats["p99_ms"] / idle_stats["p99_ms"], 2)  # type: ignore[operator]
             if start_stats["p99_ms"] and idle_stats["p99_ms"] else None)
    healthz_p99 = max(v for v in (start_stats["p99_ms"], whole_stats["p99_ms"]) if v is not None) \
        if whole_stats["p99_ms"] is not None else None
    return {
        "benchmark": "phone_soak",
        "entry_point": "voxline serve --workers 1 (subprocess)",
        "agent": {"stt": "whisper (whisper-base)", "tts": "piper", "vad": "silero",
                  "turn": "smart_turn" if args.smart_turn else "silence 0.4 s",
                  "llm": "openai_compatible -> fake OpenAI chat on loopback",
                  "question": f"{question.name} ({question.secs:.1f} s, 8 kHz)"},
        # Other work on the machine shows in every latency: the load averages say how much.
        "machine": {"cpus": os.cpu_count(), "loadavg_before": [round(x, 2) for x in load_before],
                    "loadavg_after": [round(x, 2) for x in os.getloadavg()]},
        "server": {"startup_secs": round(up_secs, 1), "alive_at_end": server_alive,
                   "calls_still_active_after_hangup": not_idle},
        "rss_mb": {
            "at_start": round(rss_start, 1), "after_warmup": round(rss_warm, 1),
            "after_sequential": round(rss_seq, 1), "after_concurrent": round(rss_end, 1),
            "sequential_growth": round(rss_seq - rss_warm, 1),
            "per_call_slope": round(per_call, 3) if per_call is not None else None,
            "sequential_max": round(max(rss_after_each), 1) if rss_after_each else None,
        },
        "healthz": {
            "idle_baseline": idle_stats,
            "concurrent_start": start_stats,
            "concurrent_whole": whole_stats,
            "p99_ratio_start_vs_idle": ratio,
            "errors": poll.errors + idle_poll.errors,
            "active_calls_max": poll.active_max,
        },
        "event_loop_lag": {
            "server": "not measurable from outside the process; /healthz latency is the proxy",
            "client_max_ms_during_burst": round(max(burst_lag), 1) if burst_lag else None,
            "client_p99_ms_during_burst": kit.percentile(burst_lag, 99),
        },
        "calls": {
            "warmup": call_stats(warm),
            "sequential": call_stats(sequential),
            "concurrent": call_stats(list(burst)),
            "completed": sum(t.ok for t in [*warm, *sequential, *burst]),
            "failed": sum(not t.ok for t in [*warm, *sequential, *burst]),
        },
        "targets": {
            **TARGETS,
            "rss_per_call_ok": per_call is not None and per_call <= TARGETS["rss_per_call_mb_max"],
            "healthz_p99_ok": healthz_p99 is not None and healthz_p99 <= TARGETS["healthz_p99_ms_max"],
        },
        **({"server_log_tail": log_tail} if not server_alive else {}),
        "params": vars(args),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sequential", type=int, default=200, help="calls one after another (default 200)")
    parser.add_argument("--concurrent", type=int, default=20, help="calls started at once (default 20)")
    parser.add_argument("--warmup", type=int, default=5, help="calls before measuring (default 5)")
    parser.add_argument("--question", default="0880",
                        help="LibriVox clip the caller asks (suffix of its name; default 0880, 3 s)")
    parser.add_argument("--smart-turn", action="store_true",
                        help="end turns with Smart Turn v3 (default: 0.4 s of silence, deterministic)")
    parser.add_argument("--idle-secs", type=float, default=5.0, help="idle /healthz baseline (default 5 s)")
    parser.add_argument("--call-timeout", type=float, default=60.0, help="per wait in a call (default 60 s)")
    parser.add_argument("--startup-timeout", type=float, default=180.0)
    parser.add_argument("--port", type=int, default=0, help="server port (default: a free one)")
    parser.add_argument("--progress", action="store_true", help="progress lines on stderr")
    parser.add_argument("--keep", action="store_true", help="keep the temp folder (agents, DB, server log)")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args)), indent=2))


if __name__ == "__main__":
    main()

"""SIP call density: N concurrent SIPp calls against one voxline SIP endpoint.

One process runs the call host (a real CallSession per call: Silero VAD, turn
detection, context aggregators, heard-text gate, DTMF) with the fake STT/LLM/TTS of
tests/phone/kit.py, behind ``start_sip`` on 127.0.0.1. SIPp (Debian sip-tester) places
the calls (scenario tests/sip/scenarios/held_call.xml: answered, held ``--secs``,
BYE), ramping at ``--rate`` calls/s. A warm-up call fills the greeting cache first.
Prints one JSON object per N.

Measured on our side of the wire:

* ``invite_to_200_ms``: INVITE received -> 200 OK sent (includes admission, the
  record write -- the call is answered once its row exists -- and RTP port allocation);
* ``greeting_rtp_after_200_ms``: 200 OK sent -> first RTP packet of the greeting;
* ``send_jitter_p99_ms``: lateness of each agent RTP packet against its 20 ms slot;
* ``cpu_pct_per_call`` (of one core) and ``rss_mb_per_call`` while all calls are up.

``--transport tcp`` places the calls over TCP, one connection per call (SIPp ``-t tn``).
Each line also gives the load average of the machine, as the measurement depends on it.

Usage: python benchmarks/sip_density.py [--ns 10,50,100] [--secs 15] [--rate 20] [--transport udp|tcp]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

GREETING = "Hello, thanks for calling."


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


def pct(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def run(ns: list[int], secs: float, rate: float, transport: str = "udp") -> None:
    from tests.phone.kit import AgentScript, fake_services, speech, write_agents
    from tests.sip.kit import run_sipp
    from voxline.logsafe import install
    from voxline.pipelines.host import CallHost
    from voxline.pipelines.limits import CallLimits
    from voxline.routing import load_agents, load_routes
    from voxline.transports.sip import SipConfig, SipServer, start_sip
    from voxline.transports.sip.config import parse_allow

    install("WARNING")
    tmp = Path(tempfile.mkdtemp(prefix="sip-density-"))
    script = AgentScript(greeting=GREETING, tts_cache={GREETING: speech(GREETING)})
    agents_dir = write_agents(tmp / "agents", script, {"numbers": {"+15550001111": "restaurant"}})
    agents = load_agents(agents_dir)
    host = CallHost(agents, services=fake_services(script), recording_dir=tmp / "rec", remember=False,
                    limits=CallLimits(max_calls_per_worker=1000))
    await host.start(os.environ.get("DATABASE_URL") or str(tmp / "voxline.db"))
    config = SipConfig(host="127.0.0.1", port=0, allow=parse_allow("127.0.0.1/32"), rtp_ports=(40000, 44000))
    server: SipServer = await start_sip(host, load_routes(agents_dir, agents).numbers, config=config)
    port = server.address[1]
    workdir = tmp / "sipp"
    workdir.mkdir()
    warm = await run_sipp("held_call", port, workdir, "-d", "1500", calls=1, timeout=30)
    assert warm.successful == 1, warm.output
    await host.settle()
    for n in ns:
        server.timings.clear()
        base_rss, cpu0 = rss_mb(), time.process_time()
        mode = ["-t", "tn", "-max_socket", "4096"] if transport == "tcp" else []
        sipp = asyncio.create_task(run_sipp("held_call", port, workdir, "-d", str(int(secs * 1000)), *mode,
                                            "-l", str(n), "-r", str(rate), calls=n, timeout=secs + n / rate + 60))
        ramp = n / rate
        # Steady state: every call up and past its greeting; sample CPU, RSS and jitter there.
        await asyncio.sleep(ramp + 2.0)
        t0, c0, calls_up = time.monotonic(), time.process_time(), len(host.calls)
        await asyncio.sleep(max(1.0, secs - 4.0))
        window_cpu = (time.process_time() - c0) / (time.monotonic() - t0)
        peak_rss = rss_mb()
        hist = [0] * 201
        for dialog in list(server.dialogs.values()):
            if dialog.line is not None:
                for ms, k in enumerate(dialog.line.transport.output().clock.histogram):
                    hist[ms] += k
        result = await sipp
        await host.settle()
        timings = list(server.timings.values())
        invite_ok = [(t["ok"] - t["invite"]) * 1000 for t in timings if "ok" in t]
        first_rtp = [(t["first_rtp"] - t["ok"]) * 1000 for t in timings if t.get("first_rtp")]
        total = sum(hist)
        seen, p99 = 0, 0
        for ms, k in enumerate(hist):
            seen += k
            if seen >= 0.99 * total:
                p99 = ms
                break
        print(json.dumps({
            "calls": n, "transport": transport, "answered": len(invite_ok), "sipp_successful": result.successful,
            "sipp_failed": result.failed, "up_at_once": calls_up, "hold_secs": secs, "rate_per_sec": rate,
            "invite_to_200_ms": {"p50": round(statistics.median(invite_ok), 1) if invite_ok else None,
                                 "p99": round(pct(invite_ok, 0.99), 1)},
            "greeting_rtp_after_200_ms": {"p50": round(statistics.median(first_rtp), 1) if first_rtp else None,
                                          "p99": round(pct(first_rtp, 0.99), 1)},
            "send_jitter_p99_ms": p99, "send_packets_sampled": total,
            "cpu_pct_per_call": round(100 * window_cpu / max(1, calls_up), 2),
            "cpu_pct_total": round(100 * window_cpu, 1),
            "rss_mb_per_call": round((peak_rss - base_rss) / max(1, calls_up), 2),
            "rss_mb": round(peak_rss, 1),
            "cpu_secs_total": round(time.process_time() - cpu0, 1),
            "max_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "load_avg_1m": round(os.getloadavg()[0], 2),
        }), flush=True)
    await server.close()
    await host.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ns", default="10,50,100", help="concurrent call counts, comma-separated")
    parser.add_argument("--secs", type=float, default=15.0, help="how long each call is held")
    parser.add_argument("--rate", type=float, default=20.0, help="new calls per second")
    parser.add_argument("--transport", choices=("udp", "tcp"), default="udp", help="SIP transport of the calls")
    args = parser.parse_args()
    asyncio.run(run([int(n) for n in args.ns.split(",")], args.secs, args.rate, args.transport))


if __name__ == "__main__":
    main()

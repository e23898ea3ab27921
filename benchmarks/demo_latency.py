"""Voice-to-voice latency of the offline demo on this machine.

Runs the restaurant scenario through ``voxline simulate --json`` (real Silero VAD,
Whisper, llama.cpp and Piper, in real time) ``--runs`` times and reports, over all
answered turns, voice-to-voice (end of the caller's speech → first agent audio, at
the caller's ear) and each stage's latency, as p50/p95. Turns whose answer needed a
tool are reported apart: they run the LLM twice. The comparison is with the target
the foundation set for this demo (p50 ≤ 1200 ms), as a ratio.

    python benchmarks/demo_latency.py [--runs 2] [--compare]

``--compare`` also runs the scenario with the first audio not put before the LLM's
next tokens (``VOXLINE_VOICE_FIRST=0``, local/voice_first.py), runs alternating, and
reports both and their ratio.

Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCENARIO = ROOT / "examples" / "restaurant" / "scenario.yaml"
TARGET_P50_MS = 1200.0


def stats(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    ordered = sorted(values)
    return {"n": len(values), "p50": round(statistics.median(values), 1),
            "p95": round(ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))], 1)}


def run_once(env: dict[str, str]) -> dict:
    out = subprocess.run([sys.executable, "-m", "voxline.cli", "simulate", "--json", str(SCENARIO)],
                         capture_output=True, text=True, env=env, cwd=ROOT)
    if out.returncode not in (0, 1):  # 1: an expectation failed, the figures still count
        raise SystemExit(f"simulate failed: {out.stderr[-2000:]}")
    return json.loads(out.stdout)


def main(runs: int, compare: bool = False) -> dict:
    load_before = [round(x, 2) for x in os.getloadavg()]  # the machine may be shared: say so
    baseline: list[dict] = []
    reports: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "RESTAURANT_BOOKINGS": str(Path(tmp) / "bookings.json")}
        for _ in range(runs):  # alternating, so a change in the machine's load hits both
            reports.append(run_once(env))
            if compare:
                baseline.append(run_once({**env, "VOXLINE_VOICE_FIRST": "0"}))
    result = summarize(reports, load_before)
    if compare:
        result["without_voice_first"] = summarize(baseline, load_before)
        after = result["all_turns"]["voice_to_voice"]
        before = result["without_voice_first"]["all_turns"]["voice_to_voice"]
        if after and before:
            result["voice_first_ratio_p50"] = round(after["p50"] / before["p50"], 3)
    return result


def summarize(reports: list[dict], load_before: list[float]) -> dict:
    runs = len(reports)
    turns = [t for r in reports for t in r["turns"] if "voice_to_voice" in t["latency_ms"]]
    plain = [t for t in turns if not t["tool_calls"]]
    with_tool = [t for t in turns if t["tool_calls"]]

    def figures(ts: list[dict]) -> dict:
        keys = ("voice_to_voice", "stt", "llm_ttft", "tts_ttfb")
        return {k: stats([t["latency_ms"][k] for t in ts if k in t["latency_ms"]]) for k in keys}

    overall = stats([t["latency_ms"]["voice_to_voice"] for t in turns])
    return {
        "benchmark": "demo_latency",
        "machine": f"{os.cpu_count()} cores",
        "load_avg_before": load_before,
        "load_avg_after": [round(x, 2) for x in os.getloadavg()],
        "runs": runs,
        "expectations_passed": sum(r["passed"] for r in reports),
        "all_turns": figures(turns),
        "turns_without_tools": figures(plain),
        "turns_with_tools": figures(with_tool),
        "target_p50_ms": TARGET_P50_MS,
        "p50_over_target": round(overall["p50"] / TARGET_P50_MS, 2) if overall else None,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--compare", action="store_true", help="also run without voice-first, alternating")
    args = parser.parse_args()
    print(json.dumps(main(args.runs, args.compare)))

"""Conversation quality of an agent on the golden suite: turns right per category.

Runs every scenario under tests/golden/ (or those given) through the real pipeline in
real time, as ``voxline simulate`` does (Silero VAD, the agent's STT, LLM and TTS; the
caller's speech synthesized, the agent's audio transcribed back), one call after the
other in one process, each with an empty bookings file. A turn is right when every
expectation it has holds; turns without expectations are not counted.

    python benchmarks/conversation_quality.py [SCENARIO.yaml ...] [--out details.json]

Prints one JSON object: turns right per category and overall, voice-to-voice p50/p95
over the answered turns, and the load average the run saw (the machine may be shared).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
GOLDEN = ROOT / "tests" / "golden"
TARGET_RIGHT = 0.90
TARGET_P50_MS = 1200.0


def scenarios(paths: list[str]) -> list[Path]:
    if paths:
        return [Path(p).resolve() for p in paths]
    return sorted(p for p in GOLDEN.glob("*/*.yaml") if p.parent.name != "agents")


def category(path: Path) -> str:
    return path.parent.name


def failed_turns(failures: list[str], n_turns: int) -> set[int]:
    """Turn numbers with a failed expectation; a failure of the whole call fails all."""
    bad: set[int] = set()
    for f in failures:
        m = re.match(r"turn (\d+):", f)
        if m:
            bad.add(int(m.group(1)))
        else:
            bad.update(range(1, n_turns + 1))
    return bad


def stats(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    ordered = sorted(values)
    return {"n": len(values), "p50": round(statistics.median(values), 1),
            "p95": round(ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))], 1)}


async def run(paths: list[Path], listen: bool = True) -> tuple[dict, list[dict]]:
    from voxline.integrations.providers.local import shared
    from voxline.pipelines.builder import Services
    from voxline.pipelines.scenario import load_scenario
    from voxline.pipelines.simulate import Simulation
    from voxline.spec import load_spec

    loaded = [(p, load_scenario(p)) for p in paths]
    specs = {str(s.agent): load_spec(s.agent) for _, s in loaded}
    await shared.apreload(specs.values())  # once, as a server does; not part of any turn
    load_before = os.getloadavg()
    details, by_cat, v2v = [], {}, []
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        for i, (path, scenario) in enumerate(loaded):
            os.environ["RESTAURANT_BOOKINGS"] = str(Path(tmp) / f"bookings-{i}.json")
            spec = specs[str(scenario.agent)]
            report = await Simulation(scenario, spec=spec, services=Services.from_spec(spec), listen=listen).run()
            checked = [n for n, t in enumerate(scenario.turns, 1) if t.expect is not None]
            bad = failed_turns(report.failures, len(scenario.turns))
            cat = by_cat.setdefault(category(path), {"turns": 0, "right": 0})
            cat["turns"] += len(checked)
            cat["right"] += sum(1 for n in checked if n not in bad)
            for t in report.turns:
                if "voice_to_voice" in t.latency_ms:
                    v2v.append(t.latency_ms["voice_to_voice"])
            details.append({"scenario": str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path),
                            "right": f"{sum(1 for n in checked if n not in bad)}/{len(checked)}",
                            **report.to_json()})
            print(f"{path.parent.name}/{path.name}: {details[-1]['right']}"
                  f"{'' if not report.failures else '  ' + '; '.join(report.failures)}", file=sys.stderr)
    turns = sum(c["turns"] for c in by_cat.values())
    right = sum(c["right"] for c in by_cat.values())
    for c in by_cat.values():
        c["rate"] = round(c["right"] / c["turns"], 3) if c["turns"] else None
    summary = {
        "benchmark": "conversation_quality",
        "agent": ", ".join(sorted({s.name for s in specs.values()})),
        "models": {k: v for s in specs.values() for k, v in
                   (("stt", s.stt.model or s.stt.provider), ("llm", s.llm.model or s.llm.provider))},
        "machine": f"{os.cpu_count()} cores",
        "load_avg_before": [round(x, 2) for x in load_before],
        "load_avg_after": [round(x, 2) for x in os.getloadavg()],
        "wall_secs": round(time.monotonic() - started, 1),
        "scenarios": len(paths),
        "turns": turns,
        "turns_right": right,
        "rate": round(right / turns, 3) if turns else None,
        "target_rate": TARGET_RIGHT,
        "by_category": dict(sorted(by_cat.items())),
        "voice_to_voice_ms": stats(v2v),
        "target_p50_ms": TARGET_P50_MS,
    }
    return summary, details


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("scenarios", nargs="*", help="scenario files (default: tests/golden/*/*.yaml)")
    parser.add_argument("--out", help="write every call's report here (JSON)")
    parser.add_argument("--no-listen", action="store_true", help="skip transcribing what the caller heard")
    args = parser.parse_args()
    from voxline.cli import _quiet_logs

    _quiet_logs(False)
    summary, details = asyncio.run(run(scenarios(args.scenarios), listen=not args.no_listen))
    if args.out:
        Path(args.out).write_text(json.dumps(details, indent=1))
    print(json.dumps(summary))


if __name__ == "__main__":
    main()

"""Memory per call of team calls on the local LLM, against single-agent calls in the same run.

In a team call, each agent the caller may be handed to keeps the conversation prepared
in advance: a snapshot of the model's KV cells (~28 KB a token on the 1.5B), held for the
length of the call (voxline/orchestration/handoff.py). It must go with the call. Calls
alternate: a team call (front desk <-> bookings, one round of handoff_latency.py's turns),
then a single-agent call of the front desk alone, without handoffs, on the same words.
After ``--warmup`` calls of each kind, the process's RSS is read before and after every
call (after a garbage collection), and the growth per call of each kind is reported, with
the team's growth as a ratio of the single agent's and the difference in MB.

STT is scripted and TTS is espeak-ng built from the spec, as in handoff_latency.py; the
LLM is the process's one llama.cpp model, shared by both kinds.

    python benchmarks/team_rss.py [--model GGUF] [--calls 6] [--warmup 2]

Prints one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import statistics
import sys
from pathlib import Path

from loguru import logger

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from handoff_latency import _agents, _rounds, call  # noqa: E402

from tests.fakes.scripted import ScriptedSTT  # noqa: E402
from voxline.integrations.providers.registry import build_llm, build_tts  # noqa: E402
from voxline.pipelines.builder import Services  # noqa: E402
from voxline.pipelines.scenario import Scenario, Turn  # noqa: E402
from voxline.pipelines.simulate import Simulation  # noqa: E402


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


async def single_call(llm: dict, first: int) -> None:
    """The front desk alone (no handoffs) on one round of the same words."""
    front = _agents(llm)["front-desk"]
    alone = front.model_copy(update={"handoffs": [], "examples": [e for e in front.examples if e.say]})
    said = [text for text, _, _ in _rounds(1, first)]
    services = Services(stt=ScriptedSTT(said), llm=build_llm(alone.llm, max_tool_calls_per_turn=2),
                        tts=build_tts(alone.tts))
    scenario = Scenario(agent=Path("front-desk.yaml"), answer_timeout_secs=60, turns=[Turn(say=s) for s in said])
    await Simulation(scenario, spec=alone, services=services, listen=False).run()


async def measured(run: object) -> float:
    gc.collect()
    await asyncio.sleep(0.5)
    before = rss_mb()
    await run  # type: ignore[misc]
    gc.collect()
    await asyncio.sleep(0.5)
    return rss_mb() - before


async def main_async(model: str | None, calls: int, warmup: int) -> dict:
    llm = {"provider": "llama", "temperature": 0.0, "max_tokens": 40, **({"model": model} if model else {})}
    growth: dict[str, list[float]] = {"team": [], "single": []}
    start = rss_mb()
    for n in range(warmup + calls):
        team = await measured(call("local", 1, model, first=n))
        single = await measured(single_call(llm, first=n))
        if n >= warmup:
            growth["team"].append(team)
            growth["single"].append(single)
    team_mb, single_mb = statistics.fmean(growth["team"]), statistics.fmean(growth["single"])
    return {"benchmark": "team_rss", "model": model or "default", "calls_each": calls, "warmup_each": warmup,
            "rss_start_mb": round(start, 1), "rss_end_mb": round(rss_mb(), 1),
            "team_mb_per_call": round(team_mb, 2), "single_mb_per_call": round(single_mb, 2),
            "team_minus_single_mb": round(team_mb - single_mb, 2),
            "team_over_single": round(team_mb / single_mb, 3) if abs(single_mb) >= 0.01 else None,
            "team_growth_mb": [round(x, 1) for x in growth["team"]],
            "single_growth_mb": [round(x, 1) for x in growth["single"]],
            "target_mb_per_call": 2.0, "within_target": team_mb <= 2.0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="qwen2.5-coder-1.5b-instruct", help="local GGUF by manifest name")
    parser.add_argument("--calls", type=int, default=6, help="measured calls of each kind")
    parser.add_argument("--warmup", type=int, default=2, help="calls of each kind before measuring")
    args = parser.parse_args()
    logger.remove()
    print(json.dumps(asyncio.run(main_async(args.model, max(1, args.calls), max(0, args.warmup)))))


if __name__ == "__main__":
    main()

"""Handoff latency: the caller's last word -> the first word of the new agent, against an
ordinary turn of the same call.

One simulated call alternates ordinary turns and handoffs between two agents (front
desk -> bookings -> front desk ...), so both kinds of turn share the machine's noise.
Voice-to-voice is measured at the caller's ear by the simulator (end of the caller's
speech -> first agent audio). Handoffs have no spoken bridge here, so the first audio
of a handoff turn *is* the new agent's first word.

- ``--llm fake`` (default): both agents on a fake OpenAI API on loopback that answers at
  once; the difference is what a handoff costs the framework (the choice, the context
  rebuilt, the services switched, the second LLM request).
- ``--llm local``: both agents on the local llama.cpp model, with their prompt prefixes
  warmed at call start and the conversation prepared by the agent that may take over
  (voxline/orchestration/handoff.py); a handoff also costs the incoming agent's state
  restored and the caller's last words evaluated again in its prompt. A turn counts as a handoff when the
  model chose one (small models miss some of the planned ones; ``turns_as_planned``
  says how many went as planned), else as an ordinary turn.

STT is scripted and TTS is espeak-ng (built from the spec as an agent's is, so it starts
at an answer's first clause) in both modes, the same for both kinds of turn.

    python benchmarks/handoff_latency.py [--llm fake|local] [--model GGUF] [--rounds 4] [--calls 1]

``--calls N`` makes N calls one after another (each starting at the next wording) and pools
their turns: small models hand off most reliably early in a call, so several short calls
give more handoff samples than one long one.

``--model`` picks the local GGUF by its manifest name (default: the spec default, the
0.5B; the restaurant example runs qwen2.5-coder-1.5b-instruct).

Prints one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

from loguru import logger

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.fakes.openai_chat import FakeOpenAIChat, Reply  # noqa: E402
from tests.fakes.scripted import ScriptedSTT  # noqa: E402
from tests.fakes.twilio_loopback import serve  # noqa: E402
from voxline.integrations.providers.registry import build_llm, build_tts  # noqa: E402
from voxline.orchestration.handoff import Team  # noqa: E402
from voxline.pipelines.builder import Services  # noqa: E402
from voxline.pipelines.scenario import Scenario, Turn  # noqa: E402
from voxline.pipelines.simulate import Simulation  # noqa: E402
from voxline.spec import parse_spec  # noqa: E402

# (what the caller says, kind, which agent should answer). Each round is worded anew: a
# small model shown the same exchange again copies its earlier answer instead of choosing.
_KINDS = [("ordinary", "front-desk"), ("handoff", "bookings"), ("ordinary", "bookings"), ("handoff", "front-desk")]
_WORDS = [
    ("When do you open", "I would like to book a table", "It is for two people",
     "Actually I have a question about parking"),
    ("Do you close late on Fridays", "Can I reserve a table for tonight", "Four of us at eight",
     "Wait, is there a garage near you"),
    ("Do you have vegetarian dishes", "I want to make a booking", "Saturday at seven please",
     "One more question, where exactly are you"),
    ("Is the kitchen open at lunch", "Please book us a table", "There will be six of us",
     "Sorry, can I bring my dog inside"),
]


def _rounds(n: int, first: int = 0) -> list[tuple[str, str, str]]:
    return [(said, kind, agent) for r in range(first, first + n)
            for said, (kind, agent) in zip(_WORDS[r % len(_WORDS)], _KINDS, strict=True)]


def _agents(llm: dict) -> dict:
    common = {"stt": {"provider": "whisper"}, "tts": {"provider": "espeak"}, "llm": llm,
              "turn": {"strategy": "silence", "stop_secs": 0.3}, "vad": {"stop_secs": 0.2},
              "idle": {"reprompt_after_secs": 60}, "guardrails": {"grounding": False}}
    front = parse_spec({**common, "name": "front-desk", "greeting": "Front desk.",
                        "tts": {"provider": "espeak", "voice": "en-us"},
                        "prompt": "You are the front desk of a restaurant. It opens at noon and has free "
                                  "parking in the garage. Pass booking requests to the bookings desk. "
                                  "Answer in one short sentence.",
                        "handoffs": [{"agent": "bookings", "when": "the caller wants to book a table"}],
                        "examples": [{"caller": "I'd like a table", "call": {"transfer_to_bookings": {}}},
                                     {"caller": "When do you close?", "say": "We close at eleven pm."}]})
    bookings = parse_spec({**common, "name": "bookings", "tts": {"provider": "espeak", "voice": "en-gb"},
                           "prompt": "You are the bookings desk. Ask for the party size, day and time. "
                                     "Pass any other question to the front desk. Answer in one short sentence.",
                           "handoffs": [{"agent": "front-desk", "when": "the caller asks anything but a booking"}],
                           "examples": [{"caller": "Where can I park?", "call": {"transfer_to_front_desk": {}}},
                                        {"caller": "It's for four", "say": "Four, lovely. Which day and time?"}]})
    return {"front-desk": front, "bookings": bookings}


def _fake_replies(rounds: int) -> list[Reply]:
    replies = []
    for _ in range(rounds):
        replies += [Reply(text="We open at noon."),
                    Reply(tool="transfer_to_bookings"), Reply(text="Sure, for how many people?"),
                    Reply(text="Two people, lovely. Which day?"),
                    Reply(tool="transfer_to_front_desk"), Reply(text="There is free parking in the garage.")]
    return replies


async def call(mode: str, rounds: int, model: str | None, first: int) -> tuple[dict[str, list[float]], int, int]:
    """One call: the voice-to-voice figures by what each turn was, turns as planned, unheard."""
    plan = _rounds(rounds, first)
    said = [text for text, _, _ in plan]
    fake = FakeOpenAIChat(replies=_fake_replies(rounds))
    async with serve(fake.app()) as url:
        if mode == "fake":
            llm = {"provider": "openai_compatible", "base_url": f"{url}/v1", "model": "fake-model"}
        else:
            llm = {"provider": "llama", "temperature": 0.0, "max_tokens": 40, **({"model": model} if model else {})}
        agents = _agents(llm)
        stt = ScriptedSTT(said)
        team = Team.build(agents["front-desk"], agents, lambda spec: Services(
            stt=stt, llm=build_llm(spec.llm, max_tool_calls_per_turn=2),
            tts=build_tts(spec.tts)))
        scenario = Scenario(agent=Path("front-desk.yaml"), answer_timeout_secs=60,
                            turns=[Turn(say=s) for s in said])
        sim = Simulation(scenario, spec=agents["front-desk"], listen=False, session_kwargs={"team": team})
        report = await sim.run()
    by_kind: dict[str, list[float]] = {"ordinary": [], "handoff": []}
    unheard = as_planned = 0
    for i, turn in enumerate(report.turns):
        _, kind, expected = plan[i]
        v2v = turn.latency_ms.get("voice_to_voice")
        handed = any(c["name"].startswith("transfer_to") for c in turn.tool_calls)
        as_planned += turn.agent == expected and (kind == "handoff") == handed
        if v2v is None:
            unheard += 1
            continue
        by_kind["handoff" if handed else "ordinary"].append(v2v)  # what happened, not what was planned
    return by_kind, as_planned, unheard


def _stats(xs: list[float]) -> dict:
    if not xs:
        return {"n": 0}
    return {"n": len(xs), "p50_ms": round(statistics.median(xs), 1), "mean_ms": round(statistics.fmean(xs), 1),
            "max_ms": round(max(xs), 1)}


async def run(mode: str, rounds: int, model: str | None = None, calls: int = 1) -> dict:
    pooled: dict[str, list[float]] = {"ordinary": [], "handoff": []}
    as_planned = unheard = 0
    for n in range(calls):
        by_kind, planned, missed = await call(mode, rounds, model, first=n * rounds)
        for kind, xs in by_kind.items():
            pooled[kind] += xs
        as_planned, unheard = as_planned + planned, unheard + missed
    named = model or ("fake-model" if mode == "fake" else "default")
    out = {"benchmark": "handoff_latency", "llm": mode, "model": named,
           "rounds": rounds, "calls": calls,
           "ordinary": _stats(pooled["ordinary"]), "handoff": _stats(pooled["handoff"]),
           "turns_as_planned": f"{as_planned}/{calls * rounds * len(_KINDS)}", "turns_unheard": unheard,
           "target_extra_ms": 300}
    if pooled["ordinary"] and pooled["handoff"]:
        out["extra_p50_ms"] = round(out["handoff"]["p50_ms"] - out["ordinary"]["p50_ms"], 1)
        out["extra_mean_ms"] = round(out["handoff"]["mean_ms"] - out["ordinary"]["mean_ms"], 1)
        out["within_target"] = out["extra_p50_ms"] <= 300
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--llm", choices=["fake", "local"], default="fake")
    parser.add_argument("--model", default=None, help="local GGUF by manifest name")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--calls", type=int, default=1, help="calls made one after another, turns pooled")
    args = parser.parse_args()
    logger.remove()
    os.environ.setdefault("OPENAI_API_KEY", "benchmark")
    os.environ.setdefault("RESTAURANT_BOOKINGS", str(Path(tempfile.mkdtemp()) / "bookings.json"))
    print(json.dumps(asyncio.run(run(args.llm, max(1, args.rounds), args.model, max(1, args.calls)))))


if __name__ == "__main__":
    main()

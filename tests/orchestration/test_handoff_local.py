"""A handoff on the local models (Whisper, llama.cpp, espeak), through the simulator: while
the call is quiet the agent the caller may be handed to evaluates the conversation so far,
so at the handoff it evaluates only the caller's last words; the handoff back stays in its
prompt (its kept prefix holds) but it cannot pass the caller straight back."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from voxline.pipelines.scenario import Expect, Scenario, Turn
from voxline.pipelines.simulate import Simulation

COMMON = {"stt": {"provider": "whisper"}, "tts": {"provider": "espeak"},
          "llm": {"provider": "llama", "temperature": 0, "max_tokens": 30},
          "turn": {"strategy": "silence", "stop_secs": 0.3}, "vad": {"stop_secs": 0.2},
          "idle": {"reprompt_after_secs": 60}, "guardrails": {"grounding": False}}
FRONT = {**COMMON, "name": "front-desk", "greeting": "Front desk, hello.",
         "prompt": "You are the front desk of Luigi's Trattoria. It opens at noon and has free parking "
                   "in the garage. Pass booking requests to the bookings desk. Answer in one short sentence.",
         "handoffs": [{"agent": "bookings", "when": "the caller wants to book a table"}],
         "examples": [{"caller": "I'd like a table", "call": {"transfer_to_bookings": {}}},
                      {"caller": "When do you close?", "say": "We close at eleven pm."}]}
BOOKINGS = {**COMMON, "name": "bookings",
            "prompt": "You are the bookings desk of Luigi's Trattoria. Ask for the party size, day and time. "
                      "Pass any other question to the front desk. Answer in one short sentence.",
            "handoffs": [{"agent": "front-desk", "when": "the caller asks anything but a booking"}],
            "examples": [{"caller": "Where can I park?", "call": {"transfer_to_front_desk": {}}},
                         {"caller": "It's for four", "say": "Four, lovely. Which day and time?"}]}


def _agents(root: Path) -> Path:
    for spec in (FRONT, BOOKINGS):
        (root / spec["name"]).mkdir(parents=True)
        (root / spec["name"] / "agent.yaml").write_text(yaml.safe_dump(spec))
    return root / "front-desk" / "agent.yaml"


@pytest.mark.models
async def test_the_incoming_agent_has_the_conversation_ready_at_the_handoff(tmp_path):
    entry = _agents(tmp_path)
    scenario = Scenario(agent=entry, answer_timeout_secs=60, turns=[
        Turn(say="Hello. Is there somewhere to park my car near the restaurant?",
             expect=Expect(agent="front-desk")),
        Turn(silence=4.0),  # a quiet moment: bookings evaluates the conversation so far
        Turn(say="I'd like a table", expect=Expect(agent="bookings", tool_called="transfer_to_bookings")),
    ])
    sim = Simulation(scenario, listen=False)
    report = await sim.run()

    assert report.passed, (report.failures, [(t.agent, t.user_text, t.agent_text) for t in sim.session.log.turns])
    team = sim.session.team
    assert team is not None and team.current == "bookings"
    bookings = team.members["bookings"].llm
    model = bookings._loaded()
    asked = [m for m in sim.session.context.get_messages() if m["role"] == "user"]
    last_words = len(model.tokens(f"<|im_start|>user\n{asked[-1]['content']}<|im_end|>\n"))
    earlier = sum(len(model.tokens(str(m.get("content") or ""))) for m in asked[:-1])
    # Only the caller's last words (and the answer's opener) were evaluated, not the call.
    assert bookings.prompt_evaluated <= last_words + 16, (bookings.prompt_evaluated, last_words)
    assert earlier > 16  # (so unprepared, it would have evaluated more)
    # Bookings was shown its way back to the front desk, but could not take it this turn.
    assert "transfer_to_front_desk" in await bookings._prompt(sim.session.context)
    calls = [c.name for t in sim.session.log.turns for c in t.tool_calls]
    assert calls.count("transfer_to_bookings") == 1 and "transfer_to_front_desk" not in calls

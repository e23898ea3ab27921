"""A few golden scenarios on the restaurant agent's own local models, in real time.

The whole suite (tests/golden/*/*.yaml) is a benchmark: benchmarks/conversation_quality.py.
Here three of its calls run as a test. What the guardrails promise must always hold:
no name from the few-shot examples, no booking or cancellation claimed without the
tool. The expectations themselves depend on a small model's choices, so two of the
three calls must pass them.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from voxline.pipelines.builder import Services
from voxline.pipelines.scenario import load_scenario
from voxline.pipelines.simulate import Simulation
from voxline.spec import load_spec

GOLDEN = Path(__file__).parent
SUBSET = ["booking_none/table_please.yaml", "cancel_unknown/henrik.yaml", "goodbye/thanks_bye.yaml"]


@pytest.mark.models
async def test_golden_subset(monkeypatch, tmp_path):
    passed = 0
    for i, name in enumerate(SUBSET):
        monkeypatch.setenv("RESTAURANT_BOOKINGS", str(tmp_path / f"bookings-{i}.json"))
        scenario = load_scenario(GOLDEN / name)
        spec = load_spec(scenario.agent)
        report = await Simulation(scenario, spec=spec, services=Services.from_spec(spec), listen=False).run()
        passed += report.passed
        for turn in report.turns:
            tools = {c["name"] for c in turn.tool_calls if c["error"] is None}
            said = turn.agent_said
            assert not re.search(r"\bTom\b", said), (name, said)
            if "book_table" not in tools:
                assert not re.search(r"\b(you're|you are|is) (now )?booked\b", said, re.I), (name, said)
            if "cancel_booking" not in tools:
                assert not re.search(r"\b(is|been|are) cancell?ed\b", said, re.I), (name, said)
    assert passed >= 2, f"{passed}/3 golden calls passed"

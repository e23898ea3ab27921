"""`voxline simulate --json`: one JSON object with the documented shape; the exit code
says whether every expectation held. Real Whisper and espeak; the LLM is a fake
OpenAI server on loopback, so the test is exact and quick."""

from __future__ import annotations

import asyncio
import json
import os
import sys

import numpy as np
import pytest
import soundfile as sf
import yaml

from tests.fakes.openai_chat import FakeOpenAIChat, Reply
from tests.fakes.twilio_loopback import serve

TURN_KEYS = {"caller_said", "agent_heard", "agent_said", "caller_heard", "interrupted",
             "tool_calls", "latency_ms"}


async def _simulate(tmp_path, url: str, expect: dict) -> tuple[int, str]:
    sf.write(tmp_path / "silent.wav", np.zeros(8000, dtype=np.int16), 8000)  # empty speech
    agent = {"name": "cli-test", "greeting": "Hello there.", "prompt": "Answer briefly.",
             "llm": {"provider": "openai_compatible", "base_url": url, "model": "fake"},
             "tts": {"provider": "espeak"}, "turn": {"strategy": "silence", "stop_secs": 0.3},
             "memory": {"enabled": False}}
    scenario = {"agent": "agent.yaml", "answer_timeout_secs": 15, "turns": [
        {"audio": "silent.wav"},
        {"say": "What time do you open?", "expect": expect},
    ]}
    (tmp_path / "agent.yaml").write_text(yaml.safe_dump(agent))
    (tmp_path / "scenario.yaml").write_text(yaml.safe_dump(scenario))
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "voxline.cli", "simulate", "--json", str(tmp_path / "scenario.yaml"),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=tmp_path,
        env={**os.environ, "OPENAI_API_KEY": "test"},
    )
    out, err = await proc.communicate()
    assert proc.returncode in (0, 1), err.decode()[-3000:]
    return proc.returncode, out.decode()


@pytest.mark.models
async def test_simulate_json_contract(tmp_path):
    fake = FakeOpenAIChat(fallback=Reply(text="We open at noon."))
    async with serve(fake.app()) as base:
        code, out = await _simulate(tmp_path, f"{base}/v1", {"says_any": ["noon"]})
        report = json.loads(out)  # exactly one JSON object on stdout
        assert code == 0 and report["passed"] and report["failures"] == []
        assert report["agent"] == "cli-test"
        assert len(report["turns"]) == 2
        for turn in report["turns"]:
            assert TURN_KEYS <= set(turn)
        silent, asked = report["turns"]
        assert silent["agent_heard"] == "" and silent["agent_said"] == ""  # silence is not a turn
        assert "noon" in asked["caller_heard"].lower()  # transcribed back from the agent's audio
        assert asked["latency_ms"]["voice_to_voice"] > 0

        code, out = await _simulate(tmp_path, f"{base}/v1", {"says_any": ["midnight"]})
        report = json.loads(out)
        assert code == 1 and not report["passed"]
        assert "midnight" in report["failures"][0]

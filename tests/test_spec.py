"""Agent specs: YAML in, typed objects out, every problem reported with its path."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from voxline.errors import SpecError
from voxline.spec import AgentSpec, PromptPart, ToolSpec, check_spec, load_spec, parse_spec

EXAMPLE = Path(__file__).parents[1] / "examples" / "restaurant" / "agent.yaml"


def _write(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "agent.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_example_agent_loads_and_checks_clean():
    spec, problems = check_spec(EXAMPLE)
    assert problems == []
    assert spec is not None and spec.name == "restaurant"
    assert [t.name for t in spec.tools] == ["find_restaurants", "book_table", "cancel_booking", "end_call"]
    assert "Luigi" in spec.system_prompt and "book_table" in spec.system_prompt


def test_every_problem_is_reported_with_its_path(tmp_path):
    path = _write(tmp_path, {
        "name": "Bad Name!",
        "prompt": "hi",
        "llm": {"provider": "llama", "temperature": 5, "colour": "blue"},
        "tools": [{"name": "x", "handler": "no-colon"}],
        "limits": {"max_call_secs": -1},
        "surprise": True,
    })
    with pytest.raises(SpecError) as e:
        load_spec(path)
    paths = {p for p, _ in e.value.problems}
    assert {"name", "llm.temperature", "llm.colour", "tools.0.handler", "limits.max_call_secs",
            "surprise"} <= paths
    assert len(e.value.problems) >= 6


def test_machine_checks_find_missing_tools_models_and_keys(tmp_path, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    path = _write(tmp_path, {
        "name": "checked",
        "prompt": "hi",
        "stt": {"provider": "whisper", "model": "whisper-huge-not-in-manifest"},
        "llm": {"provider": "openai", "model": "gpt-4o-mini"},
        "tts": {"provider": "espeak"},
        "tools": [{"name": "gone", "handler": "missing.py:fn"},
                  {"name": "boom", "handler": "tools.py:fn"},
                  {"name": "hang", "handler": "builtin:hang_up_twice"}],
    })
    (tmp_path / "tools.py").write_text("raise ImportError('no such dependency')\n")
    spec, problems = check_spec(path)
    assert spec is not None
    found = dict(problems)
    assert "OPENAI_API_KEY" in found["llm.provider"]
    assert "unknown model" in found["stt.model"]
    assert "not found" in found["tools.0.handler"]
    assert "no such dependency" in found["tools.1.handler"]
    assert "unknown built-in" in found["tools.2.handler"]


def test_cli_check_exits_non_zero_and_names_fields(tmp_path):
    path = _write(tmp_path, {"name": "x", "prompt": "hi", "llm": {"provider": "nope"}})
    run = subprocess.run([sys.executable, "-m", "voxline.cli", "check", str(path)],
                         capture_output=True, text=True)
    assert run.returncode == 1
    assert "llm.provider" in run.stderr and "unknown llm provider" in run.stderr
    ok = subprocess.run([sys.executable, "-m", "voxline.cli", "check", str(EXAMPLE)],
                        capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr


def test_python_api_builds_the_same_agent_without_yaml():
    from_yaml = load_spec(EXAMPLE)
    built = AgentSpec(
        name="restaurant",
        greeting=from_yaml.greeting,
        prompt=[PromptPart(role=p.role, text=p.text) for p in from_yaml.prompt],
        tools=[ToolSpec(name=t.name, handler=t.handler, timeout_secs=t.timeout_secs) for t in from_yaml.tools],
        stt=from_yaml.stt, llm=from_yaml.llm, tts=from_yaml.tts, turn=from_yaml.turn,
        vad=from_yaml.vad, idle=from_yaml.idle, limits=from_yaml.limits,
        examples=from_yaml.examples, guardrails=from_yaml.guardrails, base_dir=from_yaml.base_dir,
    )
    assert built == from_yaml


def test_examples_must_name_real_tools():
    with pytest.raises(SpecError) as e:
        parse_spec({"name": "a", "prompt": "p", "examples": [{"caller": "hi", "call": {"ghost": {}}}]})
    assert "ghost" in str(e.value)

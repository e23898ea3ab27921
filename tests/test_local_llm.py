"""The in-process llama.cpp LLM: constrained decisions make tool calls well-formed."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from voxline.integrations.providers.local import manifest
from voxline.integrations.providers.local.llama import (
    NO_TOOL,
    JsonStringDecoder,
    LlamaCppLLMService,
    _Model,
    render_prompt,
)
from voxline.integrations.tools.loader import load_tools
from voxline.pipelines.builder import example_messages
from voxline.spec import load_spec

EXAMPLE = Path(__file__).parents[1] / "examples" / "restaurant" / "agent.yaml"


def test_json_string_decoder_streams_until_the_closing_quote():
    d = JsonStringDecoder()
    assert d.feed('He said \\"hi') == 'He said "hi'
    assert d.feed('\\"\\nok"} trailing') == '"\nok'
    assert d.closed


def test_prompt_renders_tools_history_and_the_decision_prefix():
    prompt = render_prompt(
        [{"role": "system", "content": "Be brief."},
         {"role": "user", "content": "hi"},
         {"role": "assistant", "content": "Hello!"},
         {"role": "assistant", "content": None, "tool_calls": [
             {"function": {"name": "f", "arguments": '{"a": 1}'}}]},
         {"role": "tool", "content": '{"ok": true}'}],
        [{"type": "function", "function": {"name": "f", "parameters": {}}}],
    )
    assert prompt.startswith("<|im_start|>system\nBe brief.")
    assert f'"name": "{NO_TOOL}", "say": "Hello!"' in prompt
    assert '{"name": "f", "arguments": {"a": 1}}' in prompt
    assert "<tool_response>" in prompt
    assert prompt.endswith('<|im_start|>assistant\n<tool_call>\n{"name": "')


def _generate(messages, tools, allowed):
    model = _Model.get(manifest.resolve("qwen2.5-coder-0.5b-instruct") / "model.gguf", 4096, 2)
    out: list[tuple[str, object]] = []
    schemas = {t["function"]["name"]: t["function"]["parameters"] for t in tools}
    LlamaCppLLMService._generate(model, render_prompt(messages, tools), allowed, schemas, 0.0, 60,
                                 threading.Event(), lambda kind, value: out.append((kind, value)))
    return out


@pytest.mark.models
def test_real_model_calls_a_tool_with_schema_valid_arguments_or_speaks():
    spec = load_spec(EXAMPLE)
    tools = load_tools(spec)
    tool_dicts = [{"type": "function", "function": {"name": t.name, "description": t.description,
                                                     "parameters": t.json_schema()}} for t in tools]
    base = [{"role": "system", "content": spec.system_prompt}, *example_messages(spec)]
    booking = base + [{"role": "user", "content":
                       "Hi, I'd like a table for two tomorrow at 7 pm, my name is Anna."}]
    out = _generate(booking, tool_dicts, [t.name for t in tools])
    kind, value = out[0]
    assert kind == "tool"
    name, arguments = value
    assert name == "book_table"
    validated = next(t for t in tools if t.name == name).validate(json.loads(arguments))
    assert validated["party_size"] == 2 and validated["name"] == "Anna"

    # With tools withheld (e.g. right after a tool result) the model must speak, non-empty.
    spoken = _generate(booking, tool_dicts, [])
    assert spoken and all(kind == "text" for kind, _ in spoken)
    assert "".join(str(v) for _, v in spoken).strip()

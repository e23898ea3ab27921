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


async def _answer(choice: object, said: str = "hello", after: list[dict] = ()) -> list[tuple[str, str]]:
    """The real 0.5B model's answer to ``said`` under ``tool_choice`` (LLMContext's, as
    Pipecat passes it), as (kind, text) pieces."""
    from pipecat.adapters.llm.schemas.function_schema import FunctionSchema
    from pipecat.adapters.llm.schemas.tools_schema import ToolsSchema
    from pipecat.processors.aggregators.llm_context import NOT_GIVEN, LLMContext

    service = LlamaCppLLMService(model_path=manifest.resolve("qwen2.5-coder-0.5b-instruct") / "model.gguf")
    tools = ToolsSchema(standard_tools=[
        FunctionSchema(name="opening_hours", description="When the restaurant is open.",
                       properties={}, required=[]),
        FunctionSchema(name="find_restaurants", description="Restaurants by cuisine.",
                       properties={"cuisine": {"type": "string"}}, required=[])])
    context = LLMContext(messages=[{"role": "system", "content": "You are Luigi's receptionist."},
                                   {"role": "user", "content": said}, *after],
                         tools=tools, tool_choice=choice if choice is not None else NOT_GIVEN)
    out = []
    async for chunk in await service.get_chat_completions(context):
        delta = chunk.choices[0].delta
        if delta.tool_calls:
            out.append(("tool", delta.tool_calls[0].function.name))
        elif delta.content:
            out.append(("text", delta.content))
    return out


@pytest.mark.models
async def test_real_model_honours_the_contexts_tool_choice():
    auto = await _answer(None)
    assert [k for k, _ in auto] == ["text"] * len(auto) and auto  # "hello" needs no tool
    required = await _answer("required")
    assert required[0][0] == "tool" and required[0][1] in {"opening_hours", "find_restaurants"}
    hours = "When are you open tonight?"
    assert (await _answer("auto", hours))[0] == ("tool", "opening_hours")
    spoken = await _answer("none", hours)
    assert spoken and all(kind == "text" for kind, _ in spoken)
    # After a tool's result the model speaks, required or not (else it would loop).
    result = [{"role": "assistant", "content": None, "tool_calls": [{"id": "c1", "type": "function",
               "function": {"name": "opening_hours", "arguments": "{}"}}]},
              {"role": "tool", "tool_call_id": "c1", "content": '{"open": "noon to 11 pm"}'}]
    after = await _answer("required", hours, result)
    assert after and all(kind == "text" for kind, _ in after)
    forced = await _answer({"type": "function", "function": {"name": "find_restaurants"}})
    assert forced == [("tool", "find_restaurants")]


def test_json_string_decoder_reads_unicode_escapes_split_across_pieces():
    d = JsonStringDecoder()
    assert d.feed("algo m\\u00") + d.feed('e1s"') == "algo más"

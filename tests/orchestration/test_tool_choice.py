"""tool_choice per agent: none advertises no tools, required asks the provider for a call."""

from __future__ import annotations

from pipecat.adapters.llm.schemas.function_schema import FunctionSchema
from pipecat.adapters.llm.schemas.tools_schema import ToolsSchema
from pipecat.processors.aggregators.llm_context import NOT_GIVEN, LLMContext

from voxline.orchestration.handoff import apply_tool_choice
from voxline.spec import parse_spec


def _context() -> LLMContext:
    return LLMContext(messages=[], tools=ToolsSchema(standard_tools=[
        FunctionSchema(name="lookup", description="", properties={}, required=[])]))


def test_tool_choice_none_and_required():
    context = _context()
    apply_tool_choice(context, "none")
    assert context.tools is NOT_GIVEN and context.tool_choice is NOT_GIVEN
    context = _context()
    apply_tool_choice(context, "required")
    assert context.tool_choice == "required"
    assert parse_spec({"name": "a", "prompt": "x", "tool_choice": "required"}).tool_choice == "required"

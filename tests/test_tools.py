"""Tools: schemas from signatures, argument validation, timeouts."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from voxline.errors import ToolError
from voxline.integrations.tools.loader import load_tool
from voxline.spec import ToolSpec

AGENTS = Path(__file__).parent / "agents"


def test_schema_comes_from_the_signature():
    tool = load_tool(ToolSpec(name="lookup", handler="guard_tools.py:lookup"), AGENTS)
    schema = tool.json_schema()
    assert schema["properties"] == {"order_id": {"type": "integer"}}
    assert schema["required"] == ["order_id"]
    assert tool.description == "Look up an order by its number."
    assert tool.function_schema().name == "lookup"


def test_arguments_are_validated_before_the_call():
    tool = load_tool(ToolSpec(name="lookup", handler="guard_tools.py:lookup"), AGENTS)
    assert tool.validate({"order_id": "12"}) == {"order_id": 12}  # lax numeric strings
    for bad in ({"order_id": "twelve"}, {}, {"order_id": 1, "extra": 2}):
        with pytest.raises(ToolError, match="invalid arguments"):
            tool.validate(bad)


async def test_a_slow_tool_times_out_and_a_fast_one_answers():
    slow = load_tool(ToolSpec(name="slow", handler="guard_tools.py:slow", timeout_secs=0.2), AGENTS)
    with pytest.raises(ToolError, match="timed out") as e:
        await slow.call({"order_id": 1})
    assert e.value.retryable
    fast = load_tool(ToolSpec(name="lookup", handler="guard_tools.py:lookup"), AGENTS)
    assert await asyncio.wait_for(fast.call({"order_id": 3}), 5) == {"order_id": 3, "status": "shipped"}


def test_a_missing_function_is_a_clear_error():
    with pytest.raises(ToolError, match="not a function"):
        load_tool(ToolSpec(name="x", handler="guard_tools.py:nothing_here"), AGENTS)

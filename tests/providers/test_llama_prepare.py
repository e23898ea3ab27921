"""The local model evaluates a conversation ahead of the turn that extends it (the call an
agent is about to be handed): that turn then evaluates only its new words and answers as
it would have unprepared. A decision ends once one choice is left; a withheld tool stays
in the prompt but cannot be chosen."""

from __future__ import annotations

import json

import pytest
from pipecat.adapters.llm.schemas.function_schema import FunctionSchema
from pipecat.adapters.llm.schemas.tools_schema import ToolsSchema
from pipecat.processors.aggregators.llm_context import LLMContext

from voxline.integrations.providers.local.llama_prompt import decided
from voxline.integrations.providers.registry import build_llm
from voxline.spec import parse_spec

SPEC = parse_spec({"name": "bookings", "llm": {"temperature": 0, "max_tokens": 24},
                   "prompt": "You are the bookings desk of Luigi's Trattoria. Ask for the party size, "
                             "day and time. Answer in one short sentence."})
SO_FAR = [
    {"role": "user", "content": "Hello, do you have tables free on the terrace this weekend?"},
    {"role": "assistant", "content": "We do have terrace tables at the weekend."},
    {"role": "user", "content": "Lovely, and is the terrace heated if it gets cold in the evening?"},
    {"role": "assistant", "content": "Yes, it has heaters for the evening."},
]
LAST = {"role": "user", "content": "Then I would like to book a table there."}


def _context(messages: list[dict]) -> LLMContext:
    return LLMContext(messages=[{"role": "system", "content": SPEC.system_prompt}, *messages])


async def _answer(llm, context: LLMContext) -> tuple[str, list]:
    text, calls = [], []
    async for chunk in await llm.get_chat_completions(context):
        for choice in chunk.choices:
            text.append(choice.delta.content or "")
            calls.extend((c.function.name, c.function.arguments) for c in choice.delta.tool_calls or [])
    return "".join(text), calls


def test_a_decision_is_known_once_one_choice_is_left():
    choices = ["none", "transfer_to_bookings", "transfer_to_front_desk", "book_table"]
    assert decided("", choices) is None
    assert decided("n", choices) == "none"
    assert decided("transfer_to_", choices) is None
    assert decided("transfer_to_b", choices) == "transfer_to_bookings"
    assert decided('book_table"', choices) == "book_table"
    assert decided("x", choices) is None


@pytest.mark.models
async def test_a_prepared_conversation_costs_only_the_new_words_and_answers_the_same():
    unprepared = build_llm(SPEC.llm, max_tool_calls_per_turn=2)
    await unprepared.warm_up(_context([]))
    alone = await _answer(unprepared, _context([*SO_FAR, LAST]))
    evaluated_alone = unprepared.prompt_evaluated

    prepared = build_llm(SPEC.llm, max_tool_calls_per_turn=2)
    await prepared.warm_up(_context([]))
    assert await prepared.prepare(_context(SO_FAR), busy=lambda: False)
    # Another call's turn in between leaves the context holding something else.
    await _answer(unprepared, _context([*SO_FAR, LAST, {"role": "assistant", "content": alone[0]},
                                        {"role": "user", "content": "Thank you, goodbye."}]))
    answer = await _answer(prepared, _context([*SO_FAR, LAST]))

    assert answer == alone and (answer[0] or answer[1])
    model = prepared._loaded()
    new_words = len(model.tokens(f"<|im_start|>user\n{LAST['content']}<|im_end|>\n"))
    assert prepared.prompt_evaluated <= new_words + 16 < evaluated_alone, (prepared.prompt_evaluated, evaluated_alone)


@pytest.mark.models
async def test_a_preparation_gives_way_when_the_call_is_busy():
    llm = build_llm(SPEC.llm, max_tool_calls_per_turn=2)
    await llm.warm_up(_context([]))
    # (a conversation of its own: the process's model may hold another test's evaluated)
    conversation = [{**m, "content": m["content"].replace("terrace", "garden")} for m in SO_FAR]
    assert not await llm.prepare(_context(conversation), busy=lambda: True)
    assert await llm.prepare(_context(conversation), busy=lambda: False)  # the rest, later


@pytest.mark.models
async def test_a_withheld_tool_is_shown_but_never_chosen():
    def tool(name: str) -> FunctionSchema:
        return FunctionSchema(name=name, description=f"Call {name}", properties={}, required=[])

    llm = build_llm(SPEC.llm, max_tool_calls_per_turn=2)
    context = _context([LAST])
    context.set_tools(ToolsSchema(standard_tools=[tool("transfer_to_front_desk"), tool("take_booking")]))
    context.set_tool_choice("required")
    llm.withheld_tools = frozenset({"transfer_to_front_desk"})
    _, calls = await _answer(llm, context)
    assert calls == [("take_booking", json.dumps({}))]
    assert "transfer_to_front_desk" in await llm._prompt(context)  # the prompt (and its prefix) unchanged

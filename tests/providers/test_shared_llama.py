"""One llama.cpp model serves every call: calls side by side neither crash nor mix
their answers, and a call resumes from its own or its agent's kept state."""

from __future__ import annotations

import asyncio

import pytest
from pipecat.processors.aggregators.llm_context import LLMContext

from voxline.integrations.providers import local_factories
from voxline.integrations.providers.local import shared
from voxline.integrations.providers.registry import build_llm
from voxline.spec import AgentSpec, parse_spec


def _agent(name: str, prompt: str) -> AgentSpec:
    return parse_spec({"name": name, "prompt": prompt, "llm": {"temperature": 0, "max_tokens": 24}})


PIZZA = _agent("pizza", "You answer the phone for Luigi's Trattoria, an Italian restaurant. "
                        "We serve pizza and pasta. Answer in one short sentence.")
BIKES = _agent("bikes", "You answer the phone for Spokes, a bicycle repair shop on Main Street. "
                        "We fix flat tyres the same day. Answer in one short sentence.")
QUESTIONS = {"pizza": "What food do you serve?", "bikes": "Can you fix a flat tyre today?"}


def _call(spec: AgentSpec):
    llm = build_llm(spec.llm, max_tool_calls_per_turn=2)
    context = LLMContext(messages=[{"role": "system", "content": spec.system_prompt}])
    return llm, context


async def _say(llm, context: LLMContext, text: str) -> str:
    context.add_message({"role": "user", "content": text})
    out = []
    async for chunk in await llm.get_chat_completions(context):
        out.extend(c.delta.content for c in chunk.choices if c.delta.content)
    answer = "".join(out)
    context.add_message({"role": "assistant", "content": answer})
    return answer


async def _conversation(spec: AgentSpec, turns: int) -> list[str]:
    llm, context = _call(spec)
    await llm.warm_up(context)
    return [await _say(llm, context, QUESTIONS[spec.name]) for _ in range(turns)]


@pytest.mark.models
async def test_two_calls_at_once_on_one_model_get_their_own_answers():
    shared.preload([PIZZA, BIKES])
    model = shared.llama(local_factories.gguf_path(PIZZA.llm))
    alone = {spec.name: await _conversation(spec, 2) for spec in (PIZZA, BIKES)}
    assert all(all(answers) for answers in alone.values()), alone

    resumed = model.resumed
    together = await asyncio.gather(_conversation(PIZZA, 2), _conversation(BIKES, 2),
                                    _conversation(PIZZA, 2))
    # Greedy decoding: the same conversation gives the same words, whoever else talks.
    assert together == [alone["pizza"], alone["bikes"], alone["pizza"]]
    assert model.resumed > resumed  # turns resumed from kept states instead of starting over
    assert not model.lock.locked()


@pytest.mark.models
async def test_unset_temperature_and_max_tokens_take_the_local_defaults():
    from voxline.integrations.providers.local.llama import DEFAULT_MAX_TOKENS, DEFAULT_TEMPERATURE

    llm = build_llm(parse_spec({"name": "a", "prompt": "p"}).llm, max_tool_calls_per_turn=1)
    assert (llm._settings.temperature, llm._settings.max_tokens) == (DEFAULT_TEMPERATURE, DEFAULT_MAX_TOKENS)
    llm = build_llm(parse_spec({"name": "a", "prompt": "p", "llm": {"max_tokens": 40}}).llm,
                    max_tool_calls_per_turn=1)
    assert llm._settings.max_tokens == 40

"""In-process llama.cpp LLM with reliable tool calls.

Small instruct models call tools when they should just talk, and make up tool names.
So every answer starts with an explicit, grammar-constrained decision (see
llama_prompt.py): ``none`` is followed by free text, streamed to TTS as it is
generated; a tool name is followed by arguments constrained to that tool's JSON
schema. Only the decision and the arguments are constrained, so spoken answers cost
no grammar overhead.

The service reuses Pipecat's OpenAI service for everything around generation
(context, tool-call bookkeeping, metrics) and only replaces the network call with
OpenAI-shaped chunks made locally. The model is the process's (shared.llama),
used by one call at a time; each call keeps the state of its last answer, so when
calls take turns a call resumes where it stopped instead of evaluating its whole
conversation again.
"""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from openai.types.chat import ChatCompletionChunk
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.services.openai.llm import OpenAILLMService
from pipecat.utils.types import is_given

from voxline.integrations.providers.local import shared
from voxline.integrations.providers.local.llama_arguments import ask_for, parse_arguments, respell, ungrounded
from voxline.integrations.providers.local.llama_model import LoadedLlama, Snapshot
from voxline.integrations.providers.local.llama_prompt import (
    END,
    JSON_OBJECT_GRAMMAR,
    NO_TOOL,
    SPEECH_GRAMMAR,
    START,
    JsonStringDecoder,
    arguments_grammar,
    completion_chunk,
    decided,
    decision_choices,
    name_grammar,
    render_history,
    render_prompt,
    tool_calls_since_user,
)
from voxline.integrations.providers.local.voice_first import VOICE_FIRST

__all__ = ["NO_TOOL", "JsonStringDecoder", "LlamaCppLLMService", "render_prompt"]

# What a spec that sets neither gets: short, nearly deterministic phone answers.
DEFAULT_TEMPERATURE = 0.2
DEFAULT_MAX_TOKENS = 160


class _Model:
    """The former per-module cache, kept for callers that still ask it."""

    @staticmethod
    def get(path: Path, n_ctx: int, n_threads: int) -> LoadedLlama:
        return shared.llama(path, n_ctx=n_ctx, n_threads=n_threads)  # type: ignore[no-any-return]


def _number(value: Any, default: float) -> Any:
    # OpenAI's settings use their own NOT_GIVEN sentinel for "unset".
    return value if isinstance(value, int | float) and not isinstance(value, bool) else default


class LlamaCppLLMService(OpenAILLMService):
    """A Pipecat LLM service that runs a GGUF model in this process."""

    keeps_prefixes = True  # a call's own context goes after the agent's shared prefix

    def __init__(
        self,
        *,
        model_path: Path,
        n_ctx: int = 4096,
        n_threads: int = 2,
        max_tool_calls_per_turn: int = 3,
        **kwargs: Any,
    ):
        # The OpenAI client is never used; a placeholder key keeps its constructor quiet.
        super().__init__(api_key="local", **kwargs)
        self._settings.temperature = _number(self._settings.temperature, DEFAULT_TEMPERATURE)
        self._settings.max_tokens = int(_number(self._settings.max_tokens, DEFAULT_MAX_TOKENS))
        self._model_path = Path(model_path)
        self._n_ctx = n_ctx
        self._n_threads = n_threads
        self._max_tool_calls = max_tool_calls_per_turn
        self._model: LoadedLlama | None = None
        self._last: Snapshot | None = None  # this call's state after its last answer
        # Messages before the call itself (system prompt, few-shot examples), counted at
        # warm-up: what the caller said is what comes after them.
        self._preamble: int | None = None
        self.prefix_source: str | None = None  # where warm_up found the prefix: memory, disk, evaluated
        # Tools shown in the prompt but not to be chosen now (a team's handoffs after one
        # has happened this turn): the tools rendered, and so the kept prefix, stay the same.
        self.withheld_tools: frozenset[str] = frozenset()
        self.prompt_evaluated: int | None = None  # tokens the last answer's prompt had to evaluate
        self.set_full_model_name(self._model_path.name)

    def create_client(self, *args: Any, **kwargs: Any) -> Any:
        # Generation never goes over the network; an OpenAI client would cost ~20 ms of
        # TLS setup for every call.
        return None

    def can_generate_metrics(self) -> bool:
        return True

    def _loaded(self) -> LoadedLlama:
        if self._model is None:
            self._model = shared.llama(self._model_path, n_ctx=self._n_ctx, n_threads=self._n_threads)
        return self._model

    async def warm_up(self, context: LLMContext, *, cached_only: bool = False) -> bool:
        """Evaluate the system prompt and tools now, so the first answer is fast; with
        ``cached_only``, only when that is a read (kept or on disk). Whether it is ready."""
        messages, tools = await self._messages_and_tools(context)
        self._preamble = len(messages)
        shared_ = len(messages)  # the agent's part: without this call's own context at the end
        while shared_ > 1 and messages[shared_ - 1]["role"] == "system":
            shared_ -= 1
        prompt = render_prompt(messages[:shared_], tools)
        model = await asyncio.to_thread(self._loaded)

        def run() -> str | None:
            with model.hold():  # the next call of this agent starts from here
                return model.warm(model.tokens(prompt), cached_only=cached_only)

        source = await asyncio.to_thread(run)
        self.prefix_source = source or self.prefix_source
        return source is not None

    async def prepare(self, context: LLMContext, busy: Callable[[], bool]) -> bool:
        """Evaluate ``context`` before the turn that will extend it (the conversation this
        agent would be handed), while the model is free: chunk by chunk, giving way to any
        turn that wants the model, and stopping when ``busy()``. Whether all of it is ready."""
        messages, tools = await self._messages_and_tools(context)
        model = await asyncio.to_thread(self._loaded)
        tokens = model.tokens(render_history(messages, tools))

        def run() -> bool:
            with model.hold():
                state, done = model.prepare(tokens, self._last, lambda: model.wanted or busy())
                if state is not None:
                    self._last = state
                return done

        return await asyncio.to_thread(run)

    async def summarize(self, prompt: str, max_tokens: int = 300) -> str:
        """One answer to ``prompt`` out of the call's pipeline, as a JSON object (call summaries)."""
        model = await asyncio.to_thread(self._loaded)
        text = f"{START}user\n{prompt}{END}\n{START}assistant\n"

        def run() -> str:
            with model.hold():
                out = model.llama.create_completion(
                    model.tokens(text), max_tokens=max_tokens, temperature=0.0,
                    grammar=model.grammar(JSON_OBJECT_GRAMMAR),
                )
            return str(out["choices"][0]["text"])

        return await asyncio.to_thread(run)

    async def _prompt(self, context: LLMContext) -> str:
        messages, tools = await self._messages_and_tools(context)
        return render_prompt(messages, tools)

    async def _messages_and_tools(
        self, context: LLMContext
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        params = await self.get_llm_adapter().get_llm_invocation_params(
            context, system_instruction=self._settings.system_instruction,
            convert_developer_to_user=False,
        )
        tools = params.get("tools")
        return list(params["messages"]), (tools if isinstance(tools, list) else [])

    async def get_chat_completions(self, context: LLMContext) -> AsyncIterator[ChatCompletionChunk]:  # type: ignore[override]
        messages, tools = await self._messages_and_tools(context)
        # A small model that has just had a tool's result tends to call the tool again;
        # it speaks the result instead. Chains of tools need a larger (remote) model.
        after_tool = bool(messages) and messages[-1]["role"] == "tool"
        limit_reached = tool_calls_since_user(messages) >= self._max_tool_calls
        names, speech = decision_choices(
            context.tool_choice if is_given(context.tool_choice) else "auto",
            [] if after_tool or limit_reached else
            [t["function"]["name"] for t in tools if t["function"]["name"] not in self.withheld_tools])
        tools_allowed = [t for t in tools if t["function"]["name"] in names]
        model = await asyncio.to_thread(self._loaded)
        said = None
        if self._preamble is not None:  # the caller's words and what tools found, this call
            said = " ".join(str(m.get("content") or "") for m in messages[self._preamble:]
                            if m["role"] in ("user", "tool"))
        return self._stream(model, render_prompt(messages, tools), tools_allowed, said, speech)

    async def _stream(
        self, model: LoadedLlama, prompt: str, tools: list[dict[str, Any]], said: str | None = None,
        speech: bool = True,
    ) -> AsyncIterator[ChatCompletionChunk]:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        stop = threading.Event()
        names = [t["function"]["name"] for t in tools]
        schemas = {t["function"]["name"]: t["function"].get("parameters") or {} for t in tools}
        temperature = self._settings.temperature
        max_tokens = self._settings.max_tokens

        def emit(kind: str, value: Any) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, (kind, value))

        def generate() -> None:
            try:
                with model.hold():
                    tokens = model.tokens(prompt)
                    model.resume(tokens, self._last)
                    self.prompt_evaluated = len(tokens) - model.cached(tokens)
                    try:
                        self._generate(model, prompt, names, schemas, temperature, max_tokens, stop, emit,
                                       said, speech)
                    finally:
                        self._last = model.snapshot()
                emit("done", None)
            except Exception as e:  # surfaced in the event loop below
                emit("error", e)

        worker = asyncio.create_task(asyncio.to_thread(generate))
        completion_id = f"local-{uuid.uuid4().hex[:12]}"
        model_name = self._model_path.name
        try:
            while True:
                kind, value = await queue.get()
                if kind == "text":
                    yield completion_chunk(completion_id, model_name, {"content": value})
                elif kind == "tool":
                    name, arguments = value
                    yield completion_chunk(completion_id, model_name, {"tool_calls": [{
                        "index": 0, "id": f"call_{uuid.uuid4().hex[:12]}", "type": "function",
                        "function": {"name": name, "arguments": arguments}}]})
                elif kind == "error":
                    raise value
                else:
                    break
        finally:
            # An interruption cancels this generator: tell the thread to stop early.
            stop.set()
            await asyncio.shield(worker)

    @staticmethod
    def _decide(model: LoadedLlama, prompt: str, names: list[str], speech: bool) -> str:
        """The grammar-constrained decision, ended as soon as one choice is left: under the
        grammar its remaining tokens are forced, and each would cost a forward pass."""
        choices = [*([NO_TOOL] if speech else []), *names]
        if len(choices) == 1:
            return choices[0]
        text = ""
        for piece in model.llama.create_completion(
                model.tokens(prompt), max_tokens=12, temperature=0.0, stream=True,
                grammar=model.grammar(name_grammar(names, speech=speech))):
            text += piece["choices"][0]["text"]
            choice = decided(text, choices)
            if choice is not None:
                return choice
        return text.rstrip('"')

    @staticmethod
    def _arguments(model: LoadedLlama, prompt: str, schema: dict[str, Any]) -> dict[str, Any]:
        """A tool's arguments: written freely (fast), or under the schema's grammar when
        what was written does not fit the schema."""
        tokens = model.tokens(prompt)
        out = model.llama.create_completion(tokens, max_tokens=160, temperature=0.0,
                                            stop=["\n", "</tool_call>", END])
        arguments = parse_arguments(out["choices"][0]["text"], schema)
        if arguments is not None:
            return arguments
        out = model.llama.create_completion(tokens, max_tokens=256, temperature=0.0,
                                            grammar=model.grammar(arguments_grammar(schema)))
        try:
            value = json.loads(out["choices"][0]["text"].strip() or "{}")
        except ValueError:
            value = {}
        return value if isinstance(value, dict) else {}

    @staticmethod
    def _generate(
        model: LoadedLlama,
        prompt: str,
        names: list[str],
        schemas: dict[str, dict[str, Any]],
        temperature: Any,
        max_tokens: Any,
        stop: threading.Event,
        emit: Any,
        said: str | None = None,
        speech: bool = True,
    ) -> None:
        """One answer, with ``model.lock`` held by the caller. ``said``: what the caller
        said in this call (None: unknown), which a tool's required arguments must come from;
        ``speech``: speaking instead of calling one of ``names`` is a choice (False under
        ``tool_choice: required``)."""
        llama = model.llama
        temperature = float(_number(temperature, DEFAULT_TEMPERATURE))
        max_tokens = int(_number(max_tokens, DEFAULT_MAX_TOKENS))
        decision = NO_TOOL
        if names:  # empty when tools are not allowed now: the model must speak
            decision = LlamaCppLLMService._decide(model, prompt, names, speech)
        if decision != NO_TOOL and decision in schemas:
            schema = schemas[decision]
            if not schema.get("properties"):  # nothing to write (a handoff): no generation
                emit("tool", (decision, "{}"))
                return
            arguments = respell(LlamaCppLLMService._arguments(model, f'{prompt}{decision}", "arguments": ', schema))
            missing = ungrounded(arguments, schema, said) if said is not None else []
            if not missing:
                emit("tool", (decision, json.dumps(arguments)))
                return
            emit("text", ask_for(missing))  # the caller has not said them: ask, invent nothing
            return
        prompt += f'{NO_TOOL}", "say": "'
        # Free generation is ~40% faster than under a grammar; the grammar is only needed
        # when the model opens with an empty answer, which is rare, so it is the retry.
        for grammar in (None, model.grammar(SPEECH_GRAMMAR)):
            stream = llama.create_completion(
                model.tokens(prompt), max_tokens=max_tokens, temperature=temperature,
                stream=True, stop=[END, "<|endoftext|>"], grammar=grammar,
            )
            decoder, spoke = JsonStringDecoder(), False
            for piece in stream:
                text = decoder.feed(piece["choices"][0]["text"])
                if text.strip() or spoke:
                    spoke = True
                    emit("text", text)
                if stop.is_set() or decoder.closed:
                    break
                VOICE_FIRST.wait()  # the answer's first audio is being made: let it have the cores
            if spoke or stop.is_set():
                return

"""In-process llama.cpp LLM with reliable tool calls.

Small instruct models call tools when they should just talk, and make up tool names.
So every answer starts with an explicit, grammar-constrained decision: the prompt is
pre-filled with the opening of a Qwen-style ``<tool_call>`` and the model may only
complete the name with one of the advertised tools or ``none``. ``none`` is followed
by free text, streamed to TTS as it is generated; a tool name is followed by
arguments constrained to that tool's JSON schema. Only the decision and the
arguments are constrained, so spoken answers cost no grammar overhead.

The service reuses Pipecat's OpenAI service for everything around generation
(context, tool-call bookkeeping, metrics) and only replaces the network call with
OpenAI-shaped chunks made locally. llama.cpp keeps the evaluated prefix between
calls, so the system prompt and tools are evaluated once per call, not per turn.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from openai.types.chat import ChatCompletionChunk
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.services.openai.llm import OpenAILLMService

from voxline.extras import require

# ChatML as used by Qwen2.5 instruct models.
_START, _END = "<|im_start|>", "<|im_end|>"
_DECISION_PREFIX = '<tool_call>\n{"name": "'
NO_TOOL = "none"

_TOOLS_PREAMBLE = (
    "# Tools\n\nEvery reply is one <tool_call>. Call \"none\" to speak to the caller; call "
    "another function only when the caller's request needs it and you have its arguments.\n"
    "<tools>\n{tools}\n</tools>"
)
# The "no tool" choice, advertised like a tool so the model weighs it like one.
_NONE_TOOL = {
    "name": NO_TOOL,
    "description": "Say something to the caller: answer, ask for missing details, confirm.",
    "parameters": {"type": "object", "properties": {"say": {"type": "string"}}, "required": ["say"]},
}


class _Model:
    """One loaded GGUF, shared by every call in the process (llama.cpp is not re-entrant)."""

    _cache: dict[tuple[str, int, int], _Model] = {}
    _cache_lock = threading.Lock()

    def __init__(self, path: Path, n_ctx: int, n_threads: int):
        llama_cpp = require("llama_cpp", "local")
        self.llama = llama_cpp.Llama(
            model_path=str(path), n_ctx=n_ctx, n_threads=n_threads, verbose=False
        )
        self.grammar_cls = llama_cpp.LlamaGrammar
        self.lock = threading.Lock()
        self._grammars: dict[str, Any] = {}

    @classmethod
    def get(cls, path: Path, n_ctx: int, n_threads: int) -> _Model:
        key = (str(path), n_ctx, n_threads)
        with cls._cache_lock:
            if key not in cls._cache:
                cls._cache[key] = cls(path, n_ctx, n_threads)
            return cls._cache[key]

    def grammar(self, gbnf: str) -> Any:
        if gbnf not in self._grammars:
            self._grammars[gbnf] = self.grammar_cls.from_string(gbnf, verbose=False)
        return self._grammars[gbnf]

    def tokens(self, text: str) -> list[int]:
        return self.llama.tokenize(text.encode(), add_bos=False, special=True)


def _gbnf_literal(text: str) -> str:
    return json.dumps(text)


def name_grammar(names: list[str]) -> str:
    choices = " | ".join(_gbnf_literal(n + '"') for n in [NO_TOOL, *names])
    return f"root ::= {choices}"


# What the agent says: a non-empty JSON string body. Small models sometimes answer an
# unhelpful tool result with an empty string, which would leave the caller in silence.
SPEECH_GRAMMAR = r'''root ::= first rest* "\""
first ::= [^"\\\n ]
rest ::= [^"\\\n] | "\\" ["\\/nt]'''


JSON_OBJECT_GRAMMAR = r'''root ::= object
value ::= object | array | string | number | ("true" | "false" | "null") ws
object ::= "{" ws ( string ":" ws value ("," ws string ":" ws value)* )? "}" ws
array ::= "[" ws ( value ("," ws value)* )? "]" ws
string ::= "\"" ( [^"\\\x7F\x00-\x1F] | "\\" (["\\/bfnrt]) )* "\"" ws
number ::= ("-"? ([0-9] | [1-9] [0-9]*)) ("." [0-9]+)? ws
ws ::= [ \t\n]*'''


def arguments_grammar(schema: dict[str, Any]) -> str:
    from llama_cpp.llama_grammar import json_schema_to_gbnf

    return json_schema_to_gbnf(json.dumps(schema))


def _render_tool_call(name: str, arguments: str | dict[str, Any]) -> str:
    args = arguments if isinstance(arguments, str) else json.dumps(arguments)
    return f'<tool_call>\n{{"name": "{name}", "arguments": {args}}}\n</tool_call>'


def _render_speech(text: str) -> str:
    return f'<tool_call>\n{{"name": "{NO_TOOL}", "say": {json.dumps(text)}}}\n</tool_call>'


def render_prompt(messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> str:
    """Render OpenAI-style messages as a ChatML prompt ending where the decision starts."""
    system = "\n\n".join(
        str(m["content"]) for m in messages if m["role"] in ("system", "developer")
    )
    specs = "\n".join(json.dumps(f) for f in [_NONE_TOOL, *(t["function"] for t in tools)])
    system = f"{system}\n\n{_TOOLS_PREAMBLE.format(tools=specs)}"
    parts = [f"{_START}system\n{system}{_END}\n"]
    for m in messages:
        role, content = m["role"], _text(m.get("content"))
        if role in ("system", "developer"):
            continue
        if role == "assistant":
            calls = m.get("tool_calls") or []
            body = "\n".join(
                _render_tool_call(c["function"]["name"], c["function"]["arguments"])
                for c in calls
            )
            if not calls:
                body = _render_speech(content)
            parts.append(f"{_START}assistant\n{body}{_END}\n")
        elif role == "tool":
            parts.append(f"{_START}user\n<tool_response>\n{content}\n</tool_response>{_END}\n")
        else:
            parts.append(f"{_START}user\n{content}{_END}\n")
    parts.append(f"{_START}assistant\n{_DECISION_PREFIX}")
    return "".join(parts)


def _text(content: Any) -> str:
    if isinstance(content, list):  # OpenAI content parts
        return " ".join(p.get("text", "") for p in content if isinstance(p, dict))
    return "" if content is None else str(content)


def _tool_calls_since_user(messages: list[dict[str, Any]]) -> int:
    count = 0
    for m in reversed(messages):
        if m["role"] == "user":
            break
        count += len(m.get("tool_calls") or [])
    return count


def _chunk(completion_id: str, model: str, delta: dict[str, Any]) -> ChatCompletionChunk:
    return ChatCompletionChunk.model_validate(
        {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": None}],
        }
    )


class LlamaCppLLMService(OpenAILLMService):
    """A Pipecat LLM service that runs a GGUF model in this process."""

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
        self._model_path = Path(model_path)
        self._n_ctx = n_ctx
        self._n_threads = n_threads
        self._max_tool_calls = max_tool_calls_per_turn
        self._model: _Model | None = None
        self.set_full_model_name(self._model_path.name)

    def can_generate_metrics(self) -> bool:
        return True

    def _loaded(self) -> _Model:
        if self._model is None:
            self._model = _Model.get(self._model_path, self._n_ctx, self._n_threads)
        return self._model

    async def warm_up(self, context: LLMContext) -> None:
        """Evaluate the system prompt and tools now, so the first answer is fast."""
        prompt = await self._prompt(context)
        model = await asyncio.to_thread(self._loaded)

        def run() -> None:
            with model.lock:
                model.llama.create_completion(model.tokens(prompt), max_tokens=1, temperature=0)

        await asyncio.to_thread(run)

    async def summarize(self, prompt: str, max_tokens: int = 300) -> str:
        """One answer to ``prompt`` out of the call's pipeline, as a JSON object (call summaries)."""
        model = await asyncio.to_thread(self._loaded)
        text = f"{_START}user\n{prompt}{_END}\n{_START}assistant\n"

        def run() -> str:
            with model.lock:
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
        limit_reached = _tool_calls_since_user(messages) >= self._max_tool_calls
        tools_allowed = [] if after_tool or limit_reached else tools
        model = await asyncio.to_thread(self._loaded)
        return self._stream(model, render_prompt(messages, tools), tools_allowed)

    async def _stream(
        self, model: _Model, prompt: str, tools: list[dict[str, Any]]
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
                with model.lock:
                    emit("done", self._generate(model, prompt, names, schemas, temperature,
                                                max_tokens, stop, emit))
            except Exception as e:  # surfaced in the event loop below
                emit("error", e)

        worker = asyncio.create_task(asyncio.to_thread(generate))
        completion_id = f"local-{uuid.uuid4().hex[:12]}"
        model_name = self._model_path.name
        try:
            while True:
                kind, value = await queue.get()
                if kind == "text":
                    yield _chunk(completion_id, model_name, {"content": value})
                elif kind == "tool":
                    name, arguments = value
                    yield _chunk(completion_id, model_name, {"tool_calls": [{
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
    def _generate(
        model: _Model,
        prompt: str,
        names: list[str],
        schemas: dict[str, dict[str, Any]],
        temperature: float | None,
        max_tokens: int | None,
        stop: threading.Event,
        emit: Any,
    ) -> None:
        llama = model.llama
        temperature = 0.0 if temperature is None else float(temperature)
        decision = NO_TOOL
        if names:  # empty when tools are not allowed now: the model must speak
            out = llama.create_completion(
                model.tokens(prompt), max_tokens=12, temperature=0.0,
                grammar=model.grammar(name_grammar(names)),
            )
            decision = out["choices"][0]["text"].rstrip('"')
        if decision != NO_TOOL and decision in schemas:
            prompt += f'{decision}", "arguments": '
            out = llama.create_completion(
                model.tokens(prompt), max_tokens=256, temperature=0.0,
                grammar=model.grammar(arguments_grammar(schemas[decision])),
            )
            emit("tool", (decision, out["choices"][0]["text"].strip() or "{}"))
            return
        prompt += f'{NO_TOOL}", "say": "'
        # Free generation is ~40% faster than under a grammar; the grammar is only needed
        # when the model opens with an empty answer, which is rare, so it is the retry.
        for grammar in (None, model.grammar(SPEECH_GRAMMAR)):
            stream = llama.create_completion(
                model.tokens(prompt), max_tokens=max_tokens or 160, temperature=temperature,
                stream=True, stop=[_END, "<|endoftext|>"], grammar=grammar,
            )
            decoder, spoke = JsonStringDecoder(), False
            for piece in stream:
                text = decoder.feed(piece["choices"][0]["text"])
                if text.strip() or spoke:
                    spoke = True
                    emit("text", text)
                if stop.is_set() or decoder.closed:
                    break
            if spoke or stop.is_set():
                return


class JsonStringDecoder:
    """Decodes the body of a JSON string as it streams in, up to its closing quote."""

    _ESCAPES = {"n": "\n", "t": "\t", "r": "", '"': '"', "\\": "\\", "/": "/"}

    def __init__(self) -> None:
        self.closed = False
        self._pending_escape = False

    def feed(self, raw: str) -> str:
        out = []
        for ch in raw:
            if self.closed:
                break
            if self._pending_escape:
                self._pending_escape = False
                out.append(self._ESCAPES.get(ch, ch))
            elif ch == "\\":
                self._pending_escape = True
            elif ch == '"':
                self.closed = True
            else:
                out.append(ch)
        return "".join(out)

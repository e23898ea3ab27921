"""The prompt side of the local LLM: ChatML rendering and the grammars of each decision.

Every answer starts with an explicit, grammar-constrained decision: the prompt is
pre-filled with the opening of a Qwen-style ``<tool_call>`` and the model may only
complete the name with one of the advertised tools or ``none``.
"""

from __future__ import annotations

import json
import time
from typing import Any

from openai.types.chat import ChatCompletionChunk

# ChatML as used by Qwen2.5 instruct models.
START, END = "<|im_start|>", "<|im_end|>"
_DECISION_PREFIX = '<tool_call>\n{"name": "'
NO_TOOL = "none"
OPENER = f"{START}assistant\n{_DECISION_PREFIX}"  # where every answer starts

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


def _gbnf_literal(text: str) -> str:
    return json.dumps(text)


def name_grammar(names: list[str], *, speech: bool = True) -> str:
    """The decision: one of ``names``, or ``none`` (speak) unless ``speech`` is False
    (``tool_choice: required``: a tool must be called)."""
    choices = " | ".join(_gbnf_literal(n + '"') for n in [*([NO_TOOL] if speech else []), *names])
    return f"root ::= {choices}"


def decision_choices(tool_choice: Any, names: list[str]) -> tuple[list[str], bool]:
    """What the decision may pick under an OpenAI-style ``tool_choice`` (LLMContext's):
    the tool names, and whether speaking (``none``) is among them."""
    if tool_choice == "none":
        return [], True
    if tool_choice == "required":
        return names, not names
    if isinstance(tool_choice, dict):  # {"type": "function", "function": {"name": ...}}: that one
        forced = str((tool_choice.get("function") or {}).get("name", ""))
        return ([forced], False) if forced in names else (names, True)
    return names, True  # auto, or not given


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
    """Render OpenAI-style messages as a ChatML prompt ending where the decision starts.

    The first system message and the tools open the prompt; a system message further on
    (a call's own context after the agent's examples, a handoff's summary) stays where it
    is, so the prompt up to it is the same for every call of the agent."""
    lead = 1 if messages and messages[0]["role"] in ("system", "developer") else 0
    system = "\n\n".join(str(m["content"]) for m in messages[:lead])
    specs = "\n".join(json.dumps(f) for f in [_NONE_TOOL, *(t["function"] for t in tools)])
    system = f"{system}\n\n{_TOOLS_PREAMBLE.format(tools=specs)}"
    parts = [f"{START}system\n{system}{END}\n"]
    for m in messages[lead:]:
        role, content = m["role"], _text(m.get("content"))
        if role in ("system", "developer"):
            parts.append(f"{START}system\n{content}{END}\n")
            continue
        if role == "assistant":
            calls = m.get("tool_calls") or []
            body = "\n".join(
                _render_tool_call(c["function"]["name"], c["function"]["arguments"])
                for c in calls
            )
            if not calls:
                body = _render_speech(content)
            parts.append(f"{START}assistant\n{body}{END}\n")
        elif role == "tool":
            parts.append(f"{START}user\n<tool_response>\n{content}\n</tool_response>{END}\n")
        else:
            parts.append(f"{START}user\n{content}{END}\n")
    parts.append(OPENER)
    return "".join(parts)


def render_history(messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> str:
    """The prompt of ``messages`` without the answer's opener: what every later turn's
    prompt starts with (a conversation prepared before the caller's next words)."""
    return render_prompt(messages, tools).removesuffix(OPENER)


def decided(text: str, choices: list[str]) -> str | None:
    """The one choice that the decision written so far (``text``) can still become, once
    only one can: its remaining tokens are then known and need not be generated."""
    left = [c for c in choices if (c + '"').startswith(text)]
    return left[0] if len(left) == 1 else None


def _text(content: Any) -> str:
    if isinstance(content, list):  # OpenAI content parts
        return " ".join(p.get("text", "") for p in content if isinstance(p, dict))
    return "" if content is None else str(content)


def tool_calls_since_user(messages: list[dict[str, Any]]) -> int:
    count = 0
    for m in reversed(messages):
        if m["role"] == "user":
            break
        count += len(m.get("tool_calls") or [])
    return count


def completion_chunk(completion_id: str, model: str, delta: dict[str, Any]) -> ChatCompletionChunk:
    return ChatCompletionChunk.model_validate(
        {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": None}],
        }
    )


class JsonStringDecoder:
    """Decodes the body of a JSON string as it streams in, up to its closing quote."""

    _ESCAPES = {"n": "\n", "t": "\t", "r": "", '"': '"', "\\": "\\", "/": "/"}

    def __init__(self) -> None:
        self.closed = False
        self._pending_escape = False
        self._unicode: str | None = None  # the hex digits of a \uXXXX escape so far

    def feed(self, raw: str) -> str:
        out = []
        for ch in raw:
            if self.closed:
                break
            if self._unicode is not None:  # "m\u00e1s" (a model writes JSON's escapes too)
                self._unicode += ch
                if len(self._unicode) == 4:
                    try:
                        char = chr(int(self._unicode, 16))
                    except ValueError:
                        char = "u" + self._unicode
                    if not "\ud800" <= char <= "\udfff":  # half an emoji: nothing speakable
                        out.append(char)
                    self._unicode = None
            elif self._pending_escape and ch == "u":
                self._pending_escape, self._unicode = False, ""
            elif self._pending_escape:
                self._pending_escape = False
                out.append(self._ESCAPES.get(ch, ch))
            elif ch == "\\":
                self._pending_escape = True
            elif ch == '"':
                self.closed = True
            else:
                out.append(ch)
        return "".join(out)

"""The orchestration blocks of an agent spec: handoffs, MCP servers, knowledge, humans, tasks.

Pydantic only, so that importing the spec never pulls in Pipecat, MCP or the store::

    handoffs:
      - {agent: bookings, when: "the caller wants to book, change or cancel a table",
         context: full, bridge: "I'll pass you to our bookings desk."}
    tools:
      - {mcp: {command: python, args: [menu_server.py]}, only: [todays_specials]}
    knowledge: [docs/*.md]
    languages: {es: {prompt: "Eres la recepcionista...", tts: {provider: espeak, voice: es}}}
    humans:
      targets: {front desk: {number: "+15550002222"}}
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

if TYPE_CHECKING:
    from voxline.spec import Example, LLMBlock, PromptPart, STTBlock, TTSBlock

AGENT_NAME = r"^[a-z0-9][a-z0-9_-]*$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Handoff(_Strict):
    """Another agent (a sibling folder's ``agent.yaml``) this one may pass the caller to.

    The LLM gets one choice per handoff (``transfer_to_<agent>``) described by ``when``.
    ``context``: the new agent sees the whole conversation (``full``) or a short summary
    of it followed by the caller's last words (``summary``). ``bridge`` is said in this
    agent's voice before the new agent answers.
    """

    agent: str = Field(pattern=AGENT_NAME)
    when: str = Field(min_length=1, max_length=500)
    context: Literal["full", "summary"] = "full"
    bridge: str | None = None

    @property
    def tool_name(self) -> str:
        return handoff_tool_name(self.agent)


def handoff_tool_name(agent: str) -> str:
    return "transfer_to_" + agent.replace("-", "_")


class MCPServer(_Strict):
    """Where an MCP server is: a command run over stdio, or a streamable-HTTP URL."""

    command: str | None = None
    args: list[str] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict)
    url: str | None = Field(None, pattern=r"^https?://")
    headers: dict[str, str] = Field(default_factory=dict)
    # Connecting and listing the tools at call start; a call of one tool has its own timeout.
    connect_timeout_secs: float = Field(10.0, gt=0, le=120)

    @model_validator(mode="after")
    def _one_place(self) -> MCPServer:
        if (self.command is None) == (self.url is None):
            raise ValueError("an MCP server needs exactly one of command (stdio) and url (streamable HTTP)")
        return self


class MCPTools(_Strict):
    """The tools of one MCP server, optionally only some of them (``only``) or all but
    some (``except``)."""

    mcp: MCPServer
    only: list[str] | None = None
    except_: list[str] = Field(default_factory=list, alias="except")
    timeout_secs: float = Field(10.0, gt=0, le=120)
    say_on_error: str = "Sorry, I couldn't do that just now."

    def allows(self, name: str) -> bool:
        return (self.only is None or name in self.only) and name not in self.except_


class KnowledgeSettings(_Strict):
    """Documents the agent answers from (``builtin:search_knowledge``), built into the store
    by ``voxline kb build``. ``sources`` are globs relative to the spec's folder."""

    sources: list[str] = Field(min_length=1)
    collection: str | None = None  # default: the agent's name
    top_k: int = Field(3, ge=1, le=20)
    # A search slower than this is abandoned: the agent says it could not look it up.
    budget_ms: float = Field(300.0, gt=0, le=10_000)
    min_score: float = Field(0.2, ge=-1, le=1)
    chunk_chars: int = Field(600, ge=100, le=4000)
    overlap_chars: int = Field(80, ge=0, le=1000)


class HumanTarget(_Strict):
    """A person (or queue) ``builtin:transfer_to_human`` may pass the caller to.

    ``number`` (E.164 or sip:) for phone callers; ``webhook`` receives web callers'
    requests (summary and transcript, HMAC-signed with ``$secret_env``) and phone
    callers' too when there is no number. ``warm``: the caller hears hold audio while
    the person is called and told a summary, then both are bridged (Twilio conference);
    ``cold``: the caller is put straight through.
    """

    number: str | None = None
    webhook: str | None = Field(None, pattern=r"^https?://")
    mode: Literal["warm", "cold"] = "warm"
    ring_secs: float = Field(25.0, gt=0, le=120)
    secret_env: str | None = None

    @model_validator(mode="after")
    def _reachable(self) -> HumanTarget:
        if self.number is None and self.webhook is None:
            raise ValueError("a human target needs a number, a webhook or both")
        return self


class HumanHandoff(_Strict):
    targets: dict[str, HumanTarget] = Field(min_length=1)
    hold_message: str = "Please hold while I connect you to a colleague."
    connected_summary: str = "You have a caller from the {agent} line. {summary}"
    no_answer: str = "I'm sorry, I couldn't reach anyone just now, so I'm back with you. How else can I help?"
    requested: str = "I've passed your request on, with what you told me: a person will call you back soon."
    unavailable: str = "I'm sorry, I can't put you through to a person right now."


class TaskSettings(_Strict):
    """``builtin:call_task``: place an outbound call with ``agent`` (a task agent with the
    ``builtin:report_outcome`` tool) to one of ``numbers`` (label -> number), wait for it,
    and return what it reports."""

    agent: str = Field(pattern=AGENT_NAME)
    numbers: dict[str, str] = Field(min_length=1)
    timeout_secs: float = Field(180.0, gt=0, le=1800)
    say_while_calling: str = "Let me call them for you, one moment."


class Tasks(_Strict):
    calls: TaskSettings | None = None


def knowledge_from(value: Any) -> Any:
    """``knowledge: [docs/*.md]`` is short for ``knowledge: {sources: [docs/*.md]}``."""
    if isinstance(value, list | str):
        return {"sources": [value] if isinstance(value, str) else value}
    return value


def split_tools(tools: Any) -> tuple[Any, list[Any]]:
    """``tools:`` entries that are MCP servers (``{mcp: ...}``) apart from the others."""
    if not isinstance(tools, list):
        return tools, []
    plain = [t for t in tools if not (isinstance(t, dict) and "mcp" in t)]
    return plain, [t for t in tools if isinstance(t, dict) and "mcp" in t]



LANGUAGE_CODE = r"^[a-z]{2,3}$"  # Whisper's codes: es, de, fr, haw...


class LanguagePersona(_Strict):
    """The agent as it speaks to a caller in another language (``languages: {es: ...}``):
    each block given replaces the agent's own for the rest of the call once Whisper
    confidently hears that language; the rest (tools, handoffs, limits) stays the agent's.
    ``greeting`` is said in the new voice when the call switches into the language.
    The block types are the spec's own (bound by voxline.spec: it imports this module)."""

    prompt: list[PromptPart] | None = None
    greeting: str | None = None
    fallback: str | None = None
    stt: STTBlock | None = None
    llm: LLMBlock | None = None
    tts: TTSBlock | None = None
    examples: list[Example] | None = None

    @model_validator(mode="before")
    @classmethod
    def _prompt_from_string(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("prompt"), str):
            return {**data, "prompt": [{"role": "system", "text": data["prompt"]}]}
        return data


def check_languages(language: str, languages: dict[str, LanguagePersona]) -> None:
    """``languages`` keys are Whisper codes other than the agent's own ``language``."""
    import re

    for code in languages:
        if not re.match(LANGUAGE_CODE, code):
            raise ValueError(f"{code!r} is not a language code like es, de, fr")
        if code == language.split("-")[0].lower():
            raise ValueError(f"{code!r} is the agent's own language")

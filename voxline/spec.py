"""AgentSpec: the validated, typed description of an agent (YAML in, objects out).

Every field has a default that gives a working offline agent, so the smallest spec is
``name: my-agent`` plus a prompt. ``load_spec`` raises SpecError listing *every*
problem with its field path; ``check_spec`` adds the checks that need the machine
(model files, tool imports, API key variables).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from voxline.call_settings import PhoneSettings
from voxline.errors import SpecError
from voxline.memory.settings import MemorySettings
from voxline.orchestration.settings import (
    Handoff,
    HumanHandoff,
    KnowledgeSettings,
    LanguagePersona,
    MCPTools,
    Tasks,
    check_languages,
    knowledge_from,
    split_tools,
)
from voxline.web_settings import WebSettings


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PromptPart(_Strict):
    """One part of the prompt. ``role`` names the part (identity, rules, style...)."""

    role: str = "system"
    text: str


class RetrySettings(_Strict):
    """How one provider block is tried before the next in its list takes over.

    Bounded everywhere: ``attempts`` tries per turn on retryable errors (5xx, 429, 408,
    connection errors), ``backoff_secs`` doubling between them; a first byte later than
    ``attempt_timeout_secs`` or a gap mid-answer longer than ``stall_timeout_secs``
    hands the turn to the next block at once. Timeouts only apply while a next block
    exists: the last one is waited for, as a lone provider would be. A provider that
    failed is probed ``max_probes`` times in the background, ``probe_interval_secs``
    apart and doubling up to ``probe_max_interval_secs``, and taken back when healthy.
    """

    attempts: int = Field(2, ge=1, le=5)  # tries of this provider per turn (retryable errors)
    backoff_secs: float = Field(0.1, ge=0, le=5)
    # The caller hears at most this much extra silence when a provider hangs.
    attempt_timeout_secs: float = Field(0.8, gt=0, le=60)  # longest wait for the first byte
    stall_timeout_secs: float = Field(0.8, gt=0, le=60)  # longest gap mid-answer
    probe_interval_secs: float = Field(1.0, gt=0, le=300)
    probe_max_interval_secs: float = Field(30.0, gt=0, le=3600)
    max_probes: int = Field(10, ge=0, le=1000)


class ProviderBlock(_Strict):
    """A provider and its options. Unknown options are passed to the provider as-is.
    Fields left unset are not passed: each service keeps its own default."""

    provider: str
    model: str | None = None
    voice: str | None = None
    base_url: str | None = None
    options: dict[str, Any] = Field(default_factory=dict)
    retry: RetrySettings = Field(default_factory=RetrySettings)


class LLMBlock(ProviderBlock):
    provider: str = "llama"
    temperature: float = Field(0.2, ge=0, le=2)
    max_tokens: int = Field(160, gt=0, le=8192)


class STTBlock(ProviderBlock):
    provider: str = "whisper"


class TTSBlock(ProviderBlock):
    provider: str = "piper"


class RealtimeBlock(ProviderBlock):
    """The speech-to-speech model of ``engine: realtime`` (audio in, audio out)."""

    provider: str = "openai"


class VADSettings(_Strict):
    confidence: float = Field(0.7, gt=0, lt=1)
    start_secs: float = Field(0.2, ge=0)
    stop_secs: float = Field(0.2, ge=0)
    min_volume: float = Field(0.6, ge=0, le=1)


class TurnSettings(_Strict):
    """How the end of the caller's turn is decided.

    ``smart_turn`` runs Pipecat's Smart Turn model on top of VAD; ``silence`` ends the
    turn after ``stop_secs`` of silence (deterministic, used by tests).
    """

    strategy: Literal["smart_turn", "silence"] = "smart_turn"
    stop_secs: float = Field(0.5, ge=0, le=10)
    allow_interruptions: bool = True


class RateLimit(_Strict):
    """How often a tool may run: per call, and per tenant per minute (shared by every
    worker through the live state, Redis with ``REDIS_URL``)."""

    per_call: int | None = Field(None, ge=1)
    per_tenant_per_minute: int | None = Field(None, ge=1)


class HttpToolOptions(_Strict):
    """A webhook tool (``handler: "http:POST https://..."``): the JSON arguments are the
    body, signed with HMAC-SHA256 of ``$secret_env`` in ``signature_header``
    (``t=UNIX,v1=HEX`` over ``"{t}.{body}"``); 408/429/5xx and connection errors are
    retried ``retries`` times within the tool's timeout."""

    secret_env: str | None = None
    signature_header: str = "X-Voxline-Signature"
    retries: int = Field(1, ge=0, le=5)
    headers: dict[str, str] = Field(default_factory=dict)


class ToolSpec(_Strict):
    """A function the LLM may call.

    ``handler`` is ``path/to/file.py:function`` (relative to the spec file),
    ``package.module:function`` (parameters are read from the function's signature),
    ``http:METHOD URL`` (a webhook; its ``parameters`` are a JSON schema) or
    ``builtin:NAME``. ``returns`` is an optional JSON schema the result must match.
    """

    name: str = Field(pattern=r"^[a-zA-Z_][a-zA-Z0-9_]{0,63}$")
    handler: str = Field(pattern=r"^(?:http:(?:GET|POST|PUT|PATCH|DELETE) https?://\S+|[^:\s]+:[A-Za-z_][A-Za-z0-9_]*)$")
    description: str = ""
    timeout_secs: float = Field(5.0, gt=0, le=120)
    say_on_error: str = "Sorry, I couldn't do that just now."
    parameters: dict[str, Any] | None = None  # JSON schema of the arguments (webhook tools)
    returns: dict[str, Any] | None = None  # JSON schema of the result
    rate_limit: RateLimit | None = None
    say_on_limit: str = "Sorry, I can't do that again right now."
    cost_usd: float = Field(0.0, ge=0)  # what one call costs (counted against limits.max_cost_usd)
    http: HttpToolOptions = Field(default_factory=HttpToolOptions)
    options: dict[str, Any] = Field(default_factory=dict)  # built-ins' settings


class Example(_Strict):
    """An example exchange shown to the LLM before the call (few-shot).

    Small local models follow examples far better than instructions: one example per
    tool, and one of asking for missing details, makes their tool use dependable.
    """

    caller: str
    call: dict[str, dict[str, Any]] | None = None  # {tool_name: arguments}
    result: Any = None
    say: str | None = None

    @field_validator("call")
    @classmethod
    def _one_call(cls, call: dict[str, dict[str, Any]] | None) -> Any:
        if call is not None and len(call) != 1:
            raise ValueError("an example calls exactly one tool: {tool_name: {arguments}}")
        return call


class IdleSettings(_Strict):
    reprompt_after_secs: float = Field(7.0, gt=0)
    max_reprompts: int = Field(2, ge=0)
    reprompt: str = "Are you still there?"
    goodbye: str = "I haven't heard from you, so I'll hang up now. Goodbye!"


class Limits(_Strict):
    max_call_secs: float = Field(600.0, gt=0)
    max_tool_calls_per_turn: int = Field(3, ge=0)
    # The most a call may cost (providers' usage priced by voxline.pricing, plus the
    # tools' cost_usd); past it, tools are refused with say_over_budget.
    max_cost_usd: float | None = Field(None, gt=0)
    say_over_budget: str = "I'm sorry, I can't do any more of that on this call."
    # Calls of this agent at once, across every worker (shared through REDIS_URL).
    max_concurrent_calls: int | None = Field(None, ge=1)


class Guardrails(_Strict):
    """Output checks on what the agent says (voxline.processors.grounding).

    ``grounding``: an answer may not claim an action (booked, cancelled, sent...) that no
    tool performed, nor state the examples' content (a name only an example used) as
    fact; the caller hears ``corrections[kind]`` instead. Kinds: book, cancel, transfer,
    send, schedule, confirm, example, failed (a tool ran but its result says it did not
    happen; ``failed_cancel`` etc. for one kind). ``actions`` names the tools that
    perform a kind of action when their names do not say it (``{book: [reserve_slot]}``).
    """

    grounding: bool = True
    corrections: dict[str, str] = Field(default_factory=dict)
    actions: dict[str, list[str]] = Field(default_factory=dict)


LanguagePersona.model_rebuild(_types_namespace={
    "PromptPart": PromptPart, "STTBlock": STTBlock, "LLMBlock": LLMBlock, "TTSBlock": TTSBlock,
    "Example": Example})


class AgentSpec(_Strict):
    name: str = Field(min_length=1, pattern=r"^[a-z0-9][a-z0-9_-]*$")
    language: str = "en"
    greeting: str | None = None
    # Said when the LLM produced no answer (a provider error, an empty reply).
    fallback: str = "Sorry, I didn't catch that. Could you say it again?"
    prompt: list[PromptPart] = Field(min_length=1)
    # One block, or a list tried in order (failover); the first is the primary.
    stt: STTBlock = Field(default_factory=STTBlock)
    llm: LLMBlock = Field(default_factory=LLMBlock)
    tts: TTSBlock = Field(default_factory=TTSBlock)
    # cascade: STT -> LLM -> TTS; realtime: one speech-to-speech model (the realtime block).
    engine: Literal["cascade", "realtime"] = "cascade"
    realtime: RealtimeBlock = Field(default_factory=RealtimeBlock)
    stt_fallbacks: list[STTBlock] = Field(default_factory=list)
    llm_fallbacks: list[LLMBlock] = Field(default_factory=list)
    tts_fallbacks: list[TTSBlock] = Field(default_factory=list)
    vad: VADSettings = Field(default_factory=VADSettings)
    turn: TurnSettings = Field(default_factory=TurnSettings)
    tools: list[ToolSpec] = Field(default_factory=list)
    examples: list[Example] = Field(default_factory=list)
    idle: IdleSettings = Field(default_factory=IdleSettings)
    limits: Limits = Field(default_factory=Limits)
    memory: MemorySettings = Field(default_factory=MemorySettings)
    phone: PhoneSettings = Field(default_factory=PhoneSettings)
    web: WebSettings = Field(default_factory=WebSettings)
    guardrails: Guardrails = Field(default_factory=Guardrails)
    # Orchestration (voxline.orchestration): sibling agents this one may pass the caller
    # to, MCP servers whose tools it uses (written in ``tools:`` as ``{mcp: ...}``), its
    # knowledge base, the people it may hand over to, outbound task calls.
    handoffs: list[Handoff] = Field(default_factory=list)
    tool_choice: Literal["auto", "required", "none"] = "auto"
    mcp: list[MCPTools] = Field(default_factory=list)
    knowledge: KnowledgeSettings | None = None
    humans: HumanHandoff | None = None
    tasks: Tasks = Field(default_factory=Tasks)
    # A persona per language the caller may speak (voxline.orchestration.languages).
    languages: dict[str, LanguagePersona] = Field(default_factory=dict)
    # The folder relative tool paths are resolved against; set by load_spec.
    base_dir: Path = Field(default_factory=Path.cwd, exclude=True)

    @model_validator(mode="before")
    @classmethod
    def _provider_lists(cls, data: Any) -> Any:
        """``llm: [primary, fallback, ...]`` → ``llm`` + ``llm_fallbacks``."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        for kind in ("stt", "llm", "tts"):
            value = data.get(kind)
            if isinstance(value, list):
                if not value:
                    raise ValueError(f"{kind}: an empty list; give one block or several")
                if f"{kind}_fallbacks" in data:
                    raise ValueError(f"{kind}: give a list or {kind}_fallbacks, not both")
                data[kind], data[f"{kind}_fallbacks"] = value[0], value[1:]
        if "tools" in data:  # ``tools: [{mcp: ...}]`` entries are MCP servers
            data["tools"], servers = split_tools(data["tools"])
            if servers:
                data["mcp"] = [*data.get("mcp", []), *servers]
        if "knowledge" in data:
            data["knowledge"] = knowledge_from(data["knowledge"])
        return data

    def chain(self, kind: Literal["stt", "llm", "tts"]) -> list[ProviderBlock]:
        """The blocks of one stage in the order they are tried."""
        return [getattr(self, kind), *getattr(self, f"{kind}_fallbacks")]

    @field_validator("prompt", mode="before")
    @classmethod
    def _prompt_from_string(cls, value: Any) -> Any:
        return [{"role": "system", "text": value}] if isinstance(value, str) else value

    @field_validator("tools")
    @classmethod
    def _unique_tool_names(cls, tools: list[ToolSpec]) -> list[ToolSpec]:
        names = [t.name for t in tools]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"duplicate tool names: {', '.join(duplicates)}")
        return tools

    @field_validator("handoffs")
    @classmethod
    def _unique_handoffs(cls, handoffs: list[Handoff]) -> list[Handoff]:
        names = [h.agent for h in handoffs]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"more than one handoff to: {', '.join(duplicates)}")
        return handoffs

    @field_validator("languages")
    @classmethod
    def _language_codes(cls, languages: dict[str, LanguagePersona], info: ValidationInfo) -> Any:
        check_languages(str(info.data.get("language", "en")), languages)
        return languages

    @model_validator(mode="after")
    def _examples_use_known_tools(self) -> AgentSpec:
        names = {t.name for t in self.tools} | {h.tool_name for h in self.handoffs}
        if any(h.agent == self.name for h in self.handoffs):
            raise ValueError("handoffs: an agent cannot hand off to itself")
        for where, examples in [("", self.examples), *((f"languages.{code}.", p.examples or [])
                                                       for code, p in self.languages.items())]:
            for i, example in enumerate(examples):
                for name in example.call or {}:
                    if name not in names:
                        raise ValueError(f"{where}examples.{i}.call: {name!r} is not one of the agent's tools")
        return self

    # Tools' settings and secrets from the platform's store (voxline.integrations.tools.
    # settings): carried with the spec a server runs, never part of what it dumps or hashes.
    _tool_settings: dict[str, Any] = PrivateAttr(default_factory=dict)

    @property
    def system_prompt(self) -> str:
        return "\n\n".join(part.text.strip() for part in self.prompt)

    @property
    def tool_settings(self) -> dict[str, Any]:
        return self._tool_settings

    def with_tool_settings(self, settings: dict[str, Any]) -> AgentSpec:
        spec = self.model_copy()
        spec._tool_settings = dict(settings)
        return spec


def _path(loc: tuple[Any, ...]) -> str:
    return ".".join(str(p) for p in loc)


def parse_spec(data: Any, *, base_dir: Path | None = None) -> AgentSpec:
    """Validate a mapping into an AgentSpec, or raise SpecError with every problem."""
    if not isinstance(data, dict):
        raise SpecError([("", f"expected a mapping, got {type(data).__name__}")])
    try:
        return AgentSpec.model_validate({**data, "base_dir": base_dir or Path.cwd()})
    except ValidationError as e:
        raise SpecError([(_path(err["loc"]), err["msg"]) for err in e.errors()]) from None


def load_yaml(path: str | Path) -> Any:
    path = Path(path)
    try:
        return yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise SpecError([("", f"file not found: {path}")]) from None
    except yaml.YAMLError as e:
        raise SpecError([("", f"invalid YAML: {e}")]) from None


def load_spec(path: str | Path) -> AgentSpec:
    """Read and validate an agent YAML file."""
    path = Path(path).resolve()
    return parse_spec(load_yaml(path), base_dir=path.parent)


def check_spec(path: str | Path) -> tuple[AgentSpec | None, list[tuple[str, str]]]:
    """Validate a spec fully: schema, then model files, tool imports and secrets."""
    try:
        spec = load_spec(path)
    except SpecError as e:
        return None, e.problems
    # Imported late: these pull in provider and tool machinery.
    from voxline.integrations.providers.registry import check_providers
    from voxline.integrations.tools.loader import check_tools
    from voxline.orchestration.languages import check_personas

    return spec, check_providers(spec) + check_tools(spec) + check_personas(spec)

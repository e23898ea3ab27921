"""Provider blocks of an AgentSpec → Pipecat services, through one table.

``PROVIDERS`` says, for each ``kind:provider``, the extra that installs it, the
environment variable holding its secret, whether it needs a local model, a base URL or
a voice, the factory that builds its service, what ``voxline check`` says it will use
and how a failed one is probed before it is taken back. ``check_providers`` and
``describe_providers`` read the same table, for every block of every chain, so what
``voxline check`` reports is what building would hit. The factories live in one small
module per vendor family and import their SDK only when called, so a missing extra
only matters for the providers an agent actually uses.

A field the spec does not set is not passed: each service keeps its own default.
Every service built here carries ``voxline_provider`` (the spec's provider name), which
names it in each turn's usage and cost. A list of blocks becomes one failover chain
(``build_chain``; see :mod:`voxline.integrations.providers.failover`).
"""

from __future__ import annotations

import importlib.util
import inspect
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from voxline.errors import ModelMissingError, VoxlineError
from voxline.integrations.providers import anthropic, deepgram, elevenlabs, openai
from voxline.integrations.providers import local_factories as local
from voxline.integrations.providers.common import without_sdk_retries
from voxline.integrations.providers.local import manifest
from voxline.integrations.providers.local.first_clause import use_sentence_ends
from voxline.integrations.providers.local_factories import DEFAULT_MODELS, model_name
from voxline.spec import AgentSpec, LLMBlock, ProviderBlock, STTBlock, TTSBlock

__all__ = ["DEFAULT_MODELS", "PROVIDERS", "Provider", "build_chain", "build_llm", "build_realtime", "build_stt",
           "build_tts",
           "check_providers", "describe_providers", "model_name"]


@dataclass(frozen=True)
class Provider:
    kind: str  # stt | llm | tts
    extra: str
    secret: str | None = None  # env var that must be set
    local_model: bool = False
    requires_base_url: bool = False
    requires_voice: bool = False
    factory: Callable[..., Any] | None = None  # (block, **kind-specific arguments) -> service
    describe: Callable[[Any], str] | None = None  # block -> the model/voice it will use
    probe: Callable[[Any], Any] | None = None  # block -> awaitable; raises while unhealthy
    module: str | None = None  # what the extra installs (checked without importing it)
    service: str | None = None  # "module:Class" of the Pipecat service (option names)
    own_options: frozenset[str] = frozenset()  # options the factory reads itself


PROVIDERS: dict[str, Provider] = {
    "stt:whisper": Provider("stt", "local", local_model=True, module="faster_whisper",
                            factory=local.build_whisper, describe=local.describe_local),
    "stt:deepgram": Provider("stt", "deepgram", secret="DEEPGRAM_API_KEY", module="deepgram",
                             factory=deepgram.build_stt, describe=deepgram.describe_stt,
                             probe=deepgram.probe_stt,
                             service="pipecat.services.deepgram.stt:DeepgramSTTService"),
    "stt:openai": Provider("stt", "openai", secret="OPENAI_API_KEY", module="openai",
                           factory=openai.build_stt, describe=openai.describe_stt, probe=openai.probe_stt,
                           service="pipecat.services.openai.stt:OpenAISTTService"),
    "llm:llama": Provider("llm", "local", local_model=True, module="llama_cpp",
                          factory=local.build_llama, describe=local.describe_local),
    "llm:openai": Provider("llm", "openai", secret="OPENAI_API_KEY", module="openai",
                           factory=openai.build_llm, describe=openai.describe_llm, probe=openai.probe_llm),
    "llm:openai_compatible": Provider("llm", "openai", requires_base_url=True, module="openai",
                                      factory=openai.build_llm, describe=openai.describe_llm,
                                      probe=openai.probe_llm),
    "llm:anthropic": Provider("llm", "anthropic", secret="ANTHROPIC_API_KEY", module="anthropic",
                              factory=anthropic.build_llm, describe=anthropic.describe_llm,
                              probe=anthropic.probe_llm),
    "tts:piper": Provider("tts", "piper", local_model=True,
                          factory=local.build_piper, describe=local.describe_piper),
    "tts:espeak": Provider("tts", "local", factory=local.build_espeak, describe=local.describe_espeak),
    "tts:elevenlabs": Provider("tts", "elevenlabs", secret="ELEVENLABS_API_KEY", requires_voice=True,
                               module="websockets", factory=elevenlabs.build_tts,
                               describe=elevenlabs.describe_tts, probe=elevenlabs.probe_tts,
                               service="pipecat.services.elevenlabs.tts:ElevenLabsTTSService"),
    "tts:openai": Provider("tts", "openai", secret="OPENAI_API_KEY", module="openai",
                           factory=openai.build_tts, describe=openai.describe_tts, probe=openai.probe_tts,
                           service="pipecat.services.openai.tts:OpenAITTSService"),
    # engine: realtime — one speech-to-speech model instead of the cascade.
    "realtime:openai": Provider("realtime", "openai", secret="OPENAI_API_KEY", module="openai",
                                factory=openai.build_realtime, describe=openai.describe_realtime,
                                service="pipecat.services.openai.realtime.llm:OpenAIRealtimeLLMService",
                                own_options=frozenset({"transcription_model"})),
}


def _blocks(spec: AgentSpec) -> list[tuple[str, str, ProviderBlock]]:
    """(kind, field path, block) of every block, primaries then their fallbacks in order."""
    if getattr(spec, "engine", "cascade") == "realtime":
        return [("realtime", "realtime", spec.realtime)]
    rows = []
    for kind in ("stt", "llm", "tts"):
        rows.append((kind, kind, getattr(spec, kind)))
        for i, block in enumerate(getattr(spec, f"{kind}_fallbacks", ())):
            rows.append((kind, f"{kind}_fallbacks.{i}", block))
    return rows


def _provider(kind: str, block: ProviderBlock) -> Provider:
    provider = PROVIDERS.get(f"{kind}:{block.provider}")
    if provider is None or provider.factory is None:
        raise VoxlineError(f"unknown {kind} provider {block.provider!r}")
    return provider


def _option_names(target: str) -> set[str] | None:
    """Keyword arguments a Pipecat service (and its bases) accept, read off the source
    without building it; None when the class cannot be imported here."""
    module_name, _, cls_name = target.partition(":")
    try:
        cls = getattr(importlib.import_module(module_name), cls_name)
    except Exception:
        return None
    names: set[str] = set()
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        try:
            names |= {p.name for p in inspect.signature(init).parameters.values()
                      if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)}
        except (TypeError, ValueError):
            continue
    return names - {"self"}


def _check_block(kind: str, path: str, block: ProviderBlock) -> list[tuple[str, str]]:
    provider = PROVIDERS.get(f"{kind}:{block.provider}")
    if provider is None:
        known = sorted(k.split(":")[1] for k in PROVIDERS if k.startswith(kind))
        return [(f"{path}.provider", f"unknown {kind} provider {block.provider!r}; known: {', '.join(known)}")]
    problems: list[tuple[str, str]] = []
    if provider.module and importlib.util.find_spec(provider.module) is None:
        problems.append((f"{path}.provider", f"{block.provider} is not installed; install it with: "
                         f"pip install 'voxline[{provider.extra}]'"))
    if provider.secret and not os.environ.get(provider.secret):
        problems.append((f"{path}.provider", f"{block.provider} needs the environment "
                         f"variable {provider.secret}, which is not set"))
    if provider.requires_base_url and not block.base_url:
        problems.append((f"{path}.base_url", f"{block.provider} needs base_url"))
    if provider.requires_voice and not block.voice:
        problems.append((f"{path}.voice", f"{block.provider} needs a voice (the vendor's voice id)"))
    if block.base_url and not block.base_url.startswith(("http://", "https://", "ws://", "wss://")):
        problems.append((f"{path}.base_url", f"not a URL: {block.base_url!r}"))
    if provider.service and block.options:
        accepted = _option_names(provider.service)
        options = set(block.options)
        taken = {"api_key", "settings", "base_url", "url", "client"} | ({"sample_rate"} if kind == "stt" else set())
        unknown = options - accepted - provider.own_options if accepted is not None else set()
        for name in sorted(unknown | (options & taken)):
            problems.append((f"{path}.options.{name}", f"{block.provider} takes no option {name!r}"
                             + (" here (it is set from the block)" if name in taken else "")))
    retry = block.retry
    if retry.probe_max_interval_secs < retry.probe_interval_secs:
        problems.append((f"{path}.retry.probe_max_interval_secs", "is shorter than probe_interval_secs"))
    if provider.local_model:
        try:
            manifest.resolve(model_name(block))
        except ModelMissingError as e:
            if not (kind == "tts" and block.provider == "piper"):  # Piper falls back to espeak-ng
                problems.append((f"{path}.model", str(e)))
    return problems


def check_providers(spec: AgentSpec) -> list[tuple[str, str]]:
    """Every block of every chain: provider known and installed, secrets set, base URL,
    voice and options given as the provider needs them. Nothing is called."""
    problems: list[tuple[str, str]] = []
    for kind, path, block in _blocks(spec):
        problems += _check_block(kind, path, block)
    for kind in ("stt", "llm", "tts") if spec.engine == "cascade" else ():
        seen: dict[tuple[Any, ...], int] = {}
        for i, block in enumerate(spec.chain(kind)):  # type: ignore[arg-type]
            key = (block.provider, block.model, block.base_url, block.voice)
            if key in seen:
                problems.append((f"{kind}_fallbacks.{i - 1}", f"the same provider as block {seen[key]} "
                                 "of the list: it would fail the same way"))
            seen.setdefault(key, i)
    return problems


def describe_providers(spec: AgentSpec) -> list[tuple[str, str, str]]:
    """(kind, provider, the model/voice it will use) for each of the spec's providers,
    fallbacks after their primary."""
    rows = []
    for kind, path, block in _blocks(spec):
        provider = PROVIDERS.get(f"{kind}:{block.provider}")
        used = provider.describe(block) if provider and provider.describe else "unknown provider"
        name = block.provider if path == kind else f"{block.provider} (fallback {int(path.rsplit('.', 1)[1]) + 1})"
        rows.append((kind, name, used))
    return rows


def _tag(service: Any, block: ProviderBlock) -> Any:
    service.voxline_provider = block.provider
    return service


def build_stt(block: STTBlock, language: str, sample_rate: int | None = None) -> Any:
    """``sample_rate``: the rate of the audio the service receives (None: the pipeline's)."""
    factory = _provider("stt", block).factory
    assert factory is not None
    return _tag(factory(block, language=language, sample_rate=sample_rate), block)


def build_llm(block: LLMBlock, *, max_tool_calls_per_turn: int) -> Any:
    factory = _provider("llm", block).factory
    assert factory is not None
    return _tag(factory(block, max_tool_calls_per_turn=max_tool_calls_per_turn), block)


def build_tts(block: TTSBlock) -> Any:
    factory = _provider("tts", block).factory
    assert factory is not None
    return _tag(use_sentence_ends(factory(block)), block)


def build_realtime(block: ProviderBlock, *, max_tool_calls_per_turn: int, language: str = "en") -> Any:
    """The speech-to-speech service of ``engine: realtime``."""
    factory = _provider("realtime", block).factory
    assert factory is not None
    return _tag(factory(block, max_tool_calls_per_turn=max_tool_calls_per_turn, language=language), block)


BUILDERS: dict[str, Callable[..., Any]] = {"stt": build_stt, "llm": build_llm, "tts": build_tts}


def wants_chain(kind: str, blocks: list[ProviderBlock]) -> bool:
    """A list fails over. A lone block over the network (one with a probe) is a chain of
    one, so its retries, timeouts and health are the same as in a list; a lone local
    model stays bare (it has no 5xx or 429 to retry) unless it sets its own ``retry``."""
    return (len(blocks) > 1 or "retry" in blocks[0].model_fields_set
            or _provider(kind, blocks[0]).probe is not None)


def build_chain(kind: str, blocks: list[ProviderBlock], **kwargs: Any) -> Any:
    """The service for one stage: a bare service for one local block, else a failover
    chain (the vendor SDKs' own retries off: the chain's are bounded and come first)."""
    build = BUILDERS[kind]
    if not wants_chain(kind, blocks):
        return build(blocks[0], **kwargs)
    from voxline.integrations.providers.failover import CHAINS, Member
    from voxline.integrations.providers.failover.health import key_of

    members = []
    for i, block in enumerate(blocks):
        service = without_sdk_retries(build(block, **kwargs))
        probe = _provider(kind, block).probe
        members.append(Member(i, service, block.provider, block,
                              probe=(lambda p=probe, b=block: p(b)) if probe else None,
                              key=key_of(kind, block) if probe else None))
    return CHAINS[kind](members)

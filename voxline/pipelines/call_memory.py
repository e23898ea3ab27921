"""A call's memory: recall at the start, turn-by-turn recording, summary and facts at the end.

    runtime = await MemoryRuntime.open(database_url)          # once per process
    memory = await CallMemory.open(runtime=runtime, agent=spec, caller_key=caller_id,
                                   call_id=call_id, channel="phone", direction="inbound",
                                   from_=caller_number, to=our_number)
    session = CallSession(spec, transport, call_id=call_id, caller_id=caller_id,
                          extra_context=memory.extra_context, on_turn=memory.on_turn)
    result = await session.run()
    await memory.finish(result, summarize=...)                # never raises
    await runtime.close()                                     # at shutdown

``CallMemory.open(database_url, ...)`` without a runtime opens (and at ``finish`` closes)
one of its own, for one-off calls and ``voxline simulate``.

Nothing here waits on the database in the audio path: ``on_turn`` hands writes to the
bounded CallRecorder and returns; recall at call start is bounded by the agent's
latency budget (skipped and counted when over it); ``finish`` runs after the call.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from voxline.memory import (
    CallRecorder,
    Embedder,
    MemoryService,
    MemorySettings,
    RememberResult,
    Store,
    local_embedder,
    open_store,
    redact,
)
from voxline.memory.extract import Line
from voxline.memory.records import CallerKey
from voxline.processors.call_log import TurnRecord

log = logging.getLogger("voxline.memory")

Summarize = Callable[[str], Awaitable[str]]

# How end reasons map onto the call's stored status.
_STATUS_BY_REASON = {"error": "failed", "pipeline_error": "failed"}


@dataclass
class MemoryRuntime:
    """What a process shares between its calls: one store, one writer, one embedder."""

    store: Store
    recorder: CallRecorder
    embedder: Embedder
    owns_store: bool = True

    @classmethod
    async def open(
        cls,
        database_url: str | None = None,
        *,
        store: Store | None = None,
        embedder: Embedder | None = None,
        owner: str | None = None,
    ) -> MemoryRuntime:
        """database_url (or DATABASE_URL, or ./var/voxline.db), migrated to head.
        ``owner`` names this process on the call rows it holds (default: host:pid)."""
        owns = store is None
        store = store or await open_store(database_url, owner=owner)
        recorder = CallRecorder(store)
        recorder.start()
        if embedder is None:  # loading it (~0.2 s, with its hash check) must not stall the loop
            embedder = await asyncio.to_thread(local_embedder)
        return cls(store, recorder, embedder, owns)

    async def close(self) -> None:
        await self.recorder.close()
        if self.owns_store:
            await self.store.close()


def settings_for(agent: Any, **overrides: Any) -> MemorySettings:
    """``agent.memory`` when the spec has that block, with keyword overrides on top."""
    base = getattr(agent, "memory", None)
    if base is None:
        return MemorySettings(**overrides)
    if not isinstance(base, MemorySettings):
        base = MemorySettings.model_validate(base.model_dump())
    return base.model_copy(update=overrides) if overrides else base


def model_versions(agent: Any) -> dict[str, Any]:
    """Which providers, models and prompt the call ran with (the prompt as a short hash)."""
    out: dict[str, Any] = {}
    for part in ("stt", "llm", "tts"):
        block = getattr(agent, part, None)
        if block is not None:
            out[part] = {"provider": block.provider, "model": block.model}
    prompt = getattr(agent, "system_prompt", "")
    out["prompt_sha256"] = hashlib.sha256(prompt.encode()).hexdigest()[:16]
    return out


_LANGUAGE = re.compile(r"[a-z]{2,3}(-[A-Za-z0-9]{2,8})?")


def _language(turn: TurnRecord) -> str | None:
    """The turn's language code for its column; anything that is not a code is left out."""
    language = getattr(turn, "language", "") or ""
    return language if _LANGUAGE.fullmatch(language) else None


def _usage_and_cost(turn: TurnRecord) -> dict[str, Any]:
    """A turn's usage, the providers that served it and what that cost (voxline.pricing)."""
    from voxline.pricing import cost

    usage, providers = dict(getattr(turn, "usage", {}) or {}), dict(getattr(turn, "providers", {}) or {})
    if not usage:
        return {"usage": None, "providers": providers or None, "cost_usd": None}
    usd, _unpriced = cost(usage, providers)
    return {"usage": usage, "providers": providers, "cost_usd": usd}


def _utc(ts: float | None) -> datetime | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC)


def _jsonable(value: Any, scrub: Callable[[str], str] | None) -> Any:
    """A JSON-safe copy (unknown objects as str), with strings scrubbed when asked."""
    value = json.loads(json.dumps(value, default=str))
    if scrub is None:
        return value

    def walk(v: Any) -> Any:
        if isinstance(v, str):
            return scrub(v)
        if isinstance(v, list):
            return [walk(x) for x in v]
        if isinstance(v, dict):
            return {k: walk(x) for k, x in v.items()}
        return v

    return walk(value)


@dataclass
class CallMemory:
    settings: MemorySettings
    call_id: str
    caller_key: str | None
    runtime: MemoryRuntime | None = None
    service: MemoryService | None = None
    extra_context: list[str] = field(default_factory=list)
    recall_ms: float = 0.0
    recall_skipped: bool = False
    _owns_runtime: bool = False
    _lines: list[Line] = field(default_factory=list)
    _finished: bool = False

    @classmethod
    async def open(
        cls,
        database_url: str | None = None,
        *,
        agent: Any,
        call_id: str,
        caller_key: str | None = None,
        channel: str = "sim",
        direction: str = "inbound",
        from_: str | None = None,
        to: str | None = None,
        runtime: MemoryRuntime | None = None,
        **overrides: Any,
    ) -> CallMemory:
        """Start the call record and recall what is known about the caller.

        ``overrides`` are MemorySettings fields (tenant=, redact_transcripts=, write_policy=,
        retrieval=, ...) applied over the agent's ``memory`` block, if it has one.
        """
        settings = settings_for(agent, **overrides)
        key = str(CallerKey.parse(caller_key)) if caller_key else None
        if not settings.enabled:
            return cls(settings, call_id, key)
        owns = runtime is None
        runtime = runtime or await MemoryRuntime.open(database_url)
        service = MemoryService(
            runtime.store,
            runtime.embedder,
            profile=settings.retrieval,
            policy=settings.write_policy,
            actor=f"agent:{getattr(agent, 'name', '?')}",
        )
        memory = cls(settings, call_id, key, runtime, service, _owns_runtime=owns)
        runtime.recorder.start_call(
            settings.tenant,
            call_id=call_id,
            channel=channel,
            direction=direction,
            from_=from_,
            to=to,
            agent=getattr(agent, "name", "agent"),
            caller_key=key,
            model_versions=model_versions(agent),
        )
        if key and settings.recall:
            await memory._recall()
        return memory

    async def _recall(self) -> None:
        assert self.service is not None and self.caller_key is not None
        stats = self.service.stats
        skipped = stats.skipped_over_budget
        items = await self.service.recall(self.settings.tenant, self.caller_key)
        self.recall_ms = stats.last_ms
        self.recall_skipped = stats.skipped_over_budget > skipped
        block = MemoryService.format_context(items)
        if block:
            self.extra_context.append(block)

    @property
    def enabled(self) -> bool:
        return self.runtime is not None

    def _scrub(self, text: str) -> str:
        return redact(text, self.settings.redact_kinds) if self.settings.redacts else text

    async def on_turn(self, turn: TurnRecord) -> None:
        """A closed CallLog turn → a user row (2i) and an agent row (2i + 1), plus its
        tool calls; handed to the writer without waiting for the database."""
        if self.runtime is None or self._finished:
            return
        rec = self.runtime.recorder
        scrub = self._scrub if self.settings.redacts else None
        started, ended = _utc(turn.started_at), _utc(turn.ended_at)
        user, agent = turn.user_text.strip(), turn.agent_text.strip()
        if user:
            text = self._scrub(user)
            self._lines.append(Line("user", text))
            rec.add_turn(
                self.call_id, index=2 * turn.index, role="user", text=text, heard=None,
                started_at=started, ended_at=started, interrupted=False, latency_ms={},
                agent=getattr(turn, "agent", None) or None,
                language=_language(turn),
            )  # fmt: skip
        if agent or turn.tool_calls or getattr(turn, "usage", None):
            text = self._scrub(agent)
            if text:
                self._lines.append(Line("assistant", text))
            # CallLog's agent text is what the output transport played: what was heard.
            rec.add_turn(
                self.call_id, index=2 * turn.index + 1, role="assistant", text=text, heard=text,
                started_at=started, ended_at=ended, interrupted=turn.interrupted,
                latency_ms=dict(turn.latency_ms), **_usage_and_cost(turn),
                agent=getattr(turn, "agent", None) or None,
                language=_language(turn),
            )  # fmt: skip
        for call in turn.tool_calls:
            rec.add_tool_call(
                self.call_id,
                turn_index=2 * turn.index + 1,
                name=call.name,
                arguments=_jsonable(call.arguments, scrub),
                result=_jsonable(call.result, scrub),
                duration_ms=call.duration_ms,
                error=call.error,
            )

    async def finish(
        self,
        result: Any = None,
        *,
        summarize: Summarize | None = None,
        flush_timeout_s: float = 10.0,
    ) -> RememberResult | None:
        """End the call record; then the summary and facts. Logs, never raises.

        ``result`` is the session's CallResult (None if the call crashed). ``summarize``
        is ``async (prompt) -> answer`` (the agent's LLM); without one, or if its answer
        is unusable, an extractive summary and rule-based facts are stored.
        """
        if self.runtime is None or self._finished:
            return None
        self._finished = True
        runtime, service = self.runtime, self.service
        assert service is not None
        reason = getattr(result, "end_reason", None) or "error"
        remembered: RememberResult | None = None
        try:
            runtime.recorder.end_call(
                self.call_id,
                status=_STATUS_BY_REASON.get(reason, "completed"),
                end_reason=reason,
                ended_at=_utc(getattr(result, "ended_at", None)),
            )
            # remember_call reads the call's caller: everything must be written first.
            if not await runtime.recorder.flush(flush_timeout_s):
                log.warning("%s database unavailable: summary and facts skipped", self.call_id)
            elif self.settings.remember and any(ln.role == "user" for ln in self._lines):
                remembered = await service.remember_call(
                    self.settings.tenant, self.call_id, self._lines, summarize
                )
        except Exception as e:  # memory must never turn a finished call into a crash
            log.error("%s remembering failed: %s: %s", self.call_id, type(e).__name__, e)
        finally:
            if self._owns_runtime:
                await runtime.close()
        return remembered


def llm_summarizer(llm: Any, *, max_tokens: int = 400, timeout_s: float = 60.0) -> Summarize:
    """``async (prompt) -> answer`` from the agent's LLM service, out of the pipeline.

    Uses ``llm.summarize(prompt)`` when the service offers one (a local model can answer
    under a JSON grammar there), else Pipecat's one-shot ``run_inference``. Whatever goes
    wrong, ``remember_call`` falls back to the extractive summary and rule-based facts.
    """
    own = getattr(llm, "summarize", None)

    async def summarize(prompt: str) -> str:
        if own is not None:
            return str(await asyncio.wait_for(own(prompt), timeout_s))
        from pipecat.processors.aggregators.llm_context import LLMContext

        answer = await asyncio.wait_for(
            llm.run_inference(
                LLMContext(messages=[{"role": "user", "content": prompt}]),
                max_tokens=max_tokens,
                system_instruction="You answer with one JSON object and nothing else.",
            ),
            timeout_s,
        )
        return answer or ""

    return summarize


async def simulate_remembered(
    scenario: Any,
    *,
    runtime: MemoryRuntime,
    spec: Any = None,
    services: Any = None,
    listen: bool = True,
    summarize: Summarize | None = None,
    **overrides: Any,
) -> Any:
    """``voxline simulate`` with memory: recall before, record during, remember after.

    Run several scenarios in order with one ``runtime`` and the later calls know what
    the earlier ones learned about ``scenario.caller.id``. Returns the simulator's Report.
    """
    from voxline.pipelines.builder import Services
    from voxline.pipelines.session import CallResult
    from voxline.pipelines.simulate import Simulation
    from voxline.spec import load_spec

    spec = spec or load_spec(scenario.agent)
    services = services or Services.from_spec(spec)
    call_id = uuid.uuid4().hex
    memory = await CallMemory.open(
        runtime=runtime, agent=spec, call_id=call_id, caller_key=scenario.caller.id,
        channel="sim", direction="inbound", from_=scenario.caller.id, **overrides,
    )  # fmt: skip
    sim = Simulation(
        scenario, spec=spec, services=services, listen=listen,
        session_kwargs={"call_id": call_id, "extra_context": memory.extra_context,
                        "on_turn": memory.on_turn},
    )  # fmt: skip
    report = None
    try:
        report = await sim.run()
    finally:
        session = sim.session
        result = CallResult(
            call_id, spec.name, session.end_reason or "error", session.started_at, time.time(),
            list(session.log.turns),
        )  # fmt: skip
        await memory.finish(result, summarize=summarize or llm_summarizer(services.llm))
    return report

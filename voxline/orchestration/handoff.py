"""Multi-agent handoff: one call, several agents, one conversation.

An agent lists the sibling agents it may pass the caller to (``handoffs:``). A call
whose agent has handoffs is served by a :class:`Team`: every agent reachable through
handoffs, each with its own prompt, tools, voice and providers. The LLM sees one
choice per handoff (``transfer_to_<agent>``, described by its ``when``); the local
model's grammar-constrained decision offers them beside its tools and ``none``, like
any tool. Choosing one:

1. the outgoing agent's LLM records the handoff and, when the handoff has a
   ``bridge``, says it in the outgoing agent's voice;
2. once the choice is in the context, the context is rebuilt for the incoming agent:
   its system prompt and examples, then the conversation so far, whole
   (``context: full``) or as a short summary plus the caller's last words
   (``context: summary``); its tools are advertised;
3. the STT, LLM and TTS switch to the incoming agent's (Pipecat ``ServiceSwitcher``\\ s
   with the manual strategy: one ``ManuallySwitchServiceFrame`` each, in order with the
   frames before it, so the bridge is still spoken by the outgoing voice);
4. the incoming agent answers the same turn (``LLMRunFrame``): what the caller said
   is not asked again. The call log names the agent that answered every turn.

Why not ``pipecat.flows``' ``FlowManager``, which ships in Pipecat 1.14? Its edge
functions are the model followed here (a result with ``run_llm=False`` and an
``on_context_updated`` transition, then an ``LLMRunFrame``), but it does not fit a
handoff between agents: a node changes the system instruction and tools of *one*
LLM service, while an agent here brings its own STT, LLM (with its tools registered
on it, and its failover chain) and voice; node functions are ``(args, flow_manager)``
handlers that cannot speak a refusal and keep the LLM from re-running the way the
guarded tools do (integrations/tools/runtime.py), and each node replaces the whole tool
list; and its summary strategy (``RESET_WITH_SUMMARY``, deprecated) waits on an LLM
in the call's path for up to 5 s, where ours is built from the record at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pipecat.adapters.llm.schemas.function_schema import FunctionSchema
from pipecat.adapters.llm.schemas.tools_schema import ToolsSchema
from pipecat.frames.frames import (
    FunctionCallResultProperties,
    LLMRunFrame,
    ManuallySwitchServiceFrame,
    TTSSpeakFrame,
)
from pipecat.pipeline.service_switcher import ServiceSwitcher
from pipecat.processors.aggregators.llm_context import NOT_GIVEN, LLMContext
from pipecat.processors.frame_processor import FrameProcessor
from pipecat.services.llm_service import FunctionCallParams

from voxline.errors import SpecError
from voxline.orchestration.carry import carry_full, carry_summary
from voxline.orchestration.settings import Handoff
from voxline.orchestration.team_llm import TeamLLM, one_or_switched
from voxline.processors.call_log import CallLog, ToolCallRecord
from voxline.spec import AgentSpec

log = logging.getLogger("voxline.handoff")

# Part of every incoming agent's system prompt (a fixed text, so the prompt prefix a
# local model keeps evaluated for the agent stays valid whoever hands the caller over).
HANDOVER_NOTE = (
    "A colleague may have passed this caller to you in the middle of the call. If so, do not "
    "greet them again and do not ask for anything they already said: carry on from their last words."
)
WARM_WHEN_QUIET_SECS = 0.5  # incoming agents' prompts are evaluated once the call is this quiet
PREPARE_WHEN_FREE_SECS = 0.2  # and their conversations once nothing has been computed for this long


def team_members(entry: AgentSpec, agents: Mapping[str, AgentSpec]) -> dict[str, AgentSpec]:
    """``entry`` and every agent reachable from it through handoffs, by name."""
    members = {entry.name: entry}
    todo, problems = [entry], []
    while todo:
        spec = todo.pop()
        for i, handoff in enumerate(spec.handoffs):
            target = agents.get(handoff.agent)
            if target is None:
                problems.append((f"{spec.name}: handoffs.{i}.agent",
                                 f"no agent {handoff.agent!r} beside it; known: {', '.join(sorted(agents))}"))
            elif handoff.agent not in members:
                members[handoff.agent] = target
                todo.append(target)
    if problems:
        raise SpecError(problems)
    return members


def sibling_agents(spec: AgentSpec) -> dict[str, AgentSpec]:
    """The agents of the folders beside ``spec``'s (``DIR/NAME/agent.yaml``), and itself."""
    from voxline.routing import load_agents

    try:
        agents = load_agents(spec.base_dir.parent)
    except SpecError:
        agents = {}
    return {**agents, spec.name: spec}


def handoff_schema(handoff: Handoff) -> FunctionSchema:
    return FunctionSchema(
        name=handoff.tool_name,
        description=f"Pass the caller to the {handoff.agent} agent when {handoff.when}",
        properties={},
        required=[],
    )


@dataclass
class Member:
    spec: AgentSpec
    stt: FrameProcessor
    llm: Any
    tts: FrameProcessor
    schema: list[FunctionSchema] = field(default_factory=list)  # everything it advertises
    preamble: list[dict[str, Any]] = field(default_factory=list)  # system prompt and examples


class Team:
    """The agents one call may be answered by, and the switch between them."""

    def __init__(self, members: dict[str, Member], entry: str):
        self.members = members
        self.entry = entry
        self.current = entry
        self.handoffs = 0
        stt = list(dict.fromkeys(m.stt for m in members.values()))
        tts = list(dict.fromkeys(m.tts for m in members.values()))
        self.stt, self.tts = one_or_switched(stt), one_or_switched(tts)
        self.llm = TeamLLM([m.llm for m in members.values()])
        self._heard = self.stt  # what the pipeline gets: with personas, the STT and its gate
        if any(m.spec.languages for m in members.values()):
            from pipecat.pipeline.pipeline import Pipeline

            from voxline.orchestration.languages import LanguageGate

            self._heard = Pipeline([self.stt, LanguageGate(self)])
        self._session: Any = None
        self._preamble_len = 0
        self._extra_context: list[str] = []
        self.builtin_schemas: dict[str, FunctionSchema] = {}  # set by the call host (transfer_call)
        self._tasks: set[asyncio.Task[Any]] = set()
        self.handoff_started: float | None = None  # loop time of the last handoff (benchmarks)
        self._handoff_turn = -1  # the call log turn the last handoff happened in

    @classmethod
    def build(cls, entry: AgentSpec, agents: Mapping[str, AgentSpec],
              make_services: Callable[[AgentSpec], Any]) -> Team:
        """Services for every member and language persona (``make_services(spec)`` ->
        Services); members whose STT (and languages heard) or TTS blocks are the same share
        one service."""
        from voxline.orchestration.languages import listen_for, with_personas
        from voxline.processors.speech_text import apply_stt_hints, use_speakable

        by_block: dict[str, Any] = {}

        def shared(kind: str, spec: AgentSpec, service: Any, heard: str = "") -> Any:
            key = kind + json.dumps([b.model_dump(mode="json") for b in spec.chain(kind)], sort_keys=True)
            return by_block.setdefault(key + heard, service)

        members: dict[str, Member] = {}
        for name, spec, heard in with_personas(team_members(entry, agents)):
            services = make_services(spec)
            stt, tts = shared("stt", spec, services.stt, ",".join(heard)), shared("tts", spec, services.tts)
            if stt is services.stt:
                apply_stt_hints(spec, stt)
                listen_for(stt, spec, heard)
            use_speakable(tts)
            members[name] = Member(spec, stt, services.llm, tts)
        return cls(members, entry.name)

    @property
    def services(self) -> Any:
        from voxline.pipelines.builder import Services

        return Services(stt=self._heard, llm=self.llm, tts=self.tts)

    # -- wiring, once the session's pipeline is built -----------------------------------
    def attach(self, session: Any, extra_context: list[str]) -> None:
        """Register each agent's tools and handoff choices on its own LLM, and advertise
        the entry agent's handoff choices."""
        from voxline.orchestration.languages import language_note
        from voxline.pipelines.builder import preamble_messages, register_tools

        self._session, self._extra_context = session, list(extra_context)
        log_: CallLog = session.log
        entry_names = {t.name for t in self.members[self.entry].spec.tools}
        entry_agent = self.members[self.entry].spec.name
        for name, member in self.members.items():
            spec = member.spec
            if name != self.entry:  # the builder registered the entry's tools on every member
                for stale in entry_names - {t.name for t in spec.tools}:
                    with contextlib.suppress(KeyError):  # built-ins are registered later
                        member.llm.unregister_function(stale)
                schema = register_tools(spec, member.llm, log_)
            else:
                schema = session.context.tools
            member.schema = list(schema.standard_tools) if isinstance(schema, ToolsSchema) else []
            for handoff in spec.handoffs:
                member.llm.register_function(handoff.tool_name, self._handler(name, handoff),
                                             cancel_on_interruption=True)
                member.schema.append(handoff_schema(handoff))
            system = "\n\n".join([spec.system_prompt, *([HANDOVER_NOTE] if spec.name != entry_agent else []),
                                  *language_note(spec, self.members[spec.name].spec)])
            member.preamble = preamble_messages(system, spec, self._extra_context, member.llm)
        self._preamble_len = len(session.context.get_messages())
        self._advertise(self.entry)
        self._reground(self.entry)
        session.worker.add_event_handler("on_pipeline_started", self._on_started)
        from pipecat.processors.aggregators.llm_response_universal import LLMUserAggregator

        for processor in getattr(getattr(session, "pipeline", None), "processors", []):
            if isinstance(processor, LLMUserAggregator):  # the caller's next turn: handoffs again
                processor.add_event_handler("on_user_turn_stopped", self._on_user_turn)

    async def _on_user_turn(self, *_args: Any) -> None:
        if self._handoff_turn >= 0:
            self._handoff_turn = -1
            self._advertise(self.current, handoffs=True)

    def _tools_of(self, name: str, *, handoffs: bool = True) -> list[FunctionSchema]:
        member = self.members[name]
        schemas = list(member.schema)
        if not handoffs:  # one handoff per caller turn: no ping-pong between agents
            names = {h.tool_name for h in member.spec.handoffs}
            schemas = [s for s in schemas if s.name not in names]
        handlers = {t.handler for t in member.spec.tools}
        for builtin, schema in self.builtin_schemas.items():
            if f"builtin:{builtin}" in handlers and not any(s.name == schema.name for s in schemas):
                schemas.append(schema)
        return schemas

    def _shown(self, name: str, *, handoffs: bool = True) -> list[FunctionSchema]:
        """The tools ``name``'s LLM is shown. A local model keeps its prompt prefix (tools
        included) evaluated: it is shown its handoffs even when they may not be chosen, and
        told which are withheld, so the prefix and a prepared conversation stay valid."""
        member = self.members[name]
        if member.spec.tool_choice == "none":
            return []
        return self._tools_of(name, handoffs=handoffs or getattr(member.llm, "keeps_prefixes", False))

    def _advertise(self, name: str, *, handoffs: bool | None = None) -> None:
        context = self._session.context
        spec = self.members[name].spec
        if handoffs is None:
            handoffs = self._handoff_turn != len(self._session.log.turns)
        tools = self._shown(name, handoffs=handoffs)
        llm = self.members[name].llm
        if getattr(llm, "keeps_prefixes", False):
            llm.withheld_tools = frozenset() if handoffs else frozenset(h.tool_name for h in spec.handoffs)
        context.set_tools(ToolsSchema(standard_tools=tools) if tools else NOT_GIVEN)
        context.set_tool_choice(spec.tool_choice if tools and spec.tool_choice != "auto" else NOT_GIVEN)

    def _reground(self, name: str) -> None:
        """The output checks of the pipeline follow the agent that speaks: its corrections
        and examples, and every member's tools (a booking bookings made is a fact for the
        front desk too)."""
        from voxline.processors.grounding import GroundingChecker, GroundingGuard

        pipeline = getattr(self._session, "pipeline", None)
        for processor in getattr(pipeline, "processors", []):
            if isinstance(processor, GroundingGuard):
                checker = GroundingChecker(self.members[name].spec, self._session.log, self._extra_context)
                for member in self.members.values():
                    for kind_name, kinds in GroundingChecker(member.spec, self._session.log)._tool_kinds.items():
                        checker._tool_kinds.setdefault(kind_name, set()).update(kinds)
                processor._checker = checker

    async def _on_started(self, *_args: Any) -> None:
        # Every incoming agent's prompt prefix is made ready, so a handoff costs only the
        # conversation's tokens: at once where that is a read (kept by the process, or on
        # disk from an earlier one), else evaluated while the call is quiet, one agent at a
        # time and after the caller's first turn (a local model has one lock: a warm-up
        # must not stand in front of the caller's turn). Only a handoff in the very first
        # turn of the first process to run these prompts is cold.
        task = asyncio.ensure_future(self._warm_members())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _context_for(self, name: str, messages: list[dict[str, Any]]) -> LLMContext:
        tools = self._shown(name)
        return LLMContext(messages=[*self.members[name].preamble, *messages],
                          tools=ToolsSchema(standard_tools=tools) if tools else NOT_GIVEN)

    async def _warm_members(self) -> None:
        cold = []
        for name, member in self.members.items():
            warm = getattr(member.llm, "warm_up", None)
            if name == self.entry or warm is None:
                continue
            context = self._context_for(name, [])
            try:
                if not await warm(context, cached_only=True):
                    cold.append((name, warm, context))
            except Exception as e:  # a cold prefix is slower, not wrong
                log.warning("- warming up agent %s failed: %s", name, type(e).__name__)
        log_ = self._session.log
        for name, warm, context in cold:
            await self._quiet(lambda: not log_.busy() and not log_.caller_speaking, WARM_WHEN_QUIET_SECS)
            try:
                await warm(context)
            except Exception as e:  # a cold prefix is slower, not wrong
                log.warning("- warming up agent %s failed: %s", name, type(e).__name__)
        await self._prepare_targets()

    async def _quiet(self, free: Callable[[], bool], secs: float) -> None:
        """Until ``free()`` has held for ``secs``, after the caller's first turn (which
        comes before any warm-up)."""
        log_, quiet_since = self._session.log, None
        while True:  # bounded by the call: the session cancels its tasks when it ends
            now = asyncio.get_running_loop().time()
            if not free() or len(log_.turns) < 2:
                quiet_since = None
            elif quiet_since is None:
                quiet_since = now
            elif now - quiet_since >= secs:
                return
            await asyncio.sleep(0.05)

    async def _prepare_targets(self) -> None:
        """Whenever nothing is being computed for the call (the agent may still be heard,
        the caller may be speaking: the machine is idle then), the agents the current one
        may hand the caller to (with ``context: full``) evaluate the conversation they would
        be handed: a handoff then costs the incoming agent the caller's last words, as an
        ordinary turn does, not the whole call. A preparation gives way at once to a turn
        that needs the model, and only what the conversation added since the last one is
        evaluated."""
        from voxline.orchestration.languages import code, in_language

        if not any(hasattr(m.llm, "prepare") for m in self.members.values()):
            return  # no member keeps what it evaluated (cloud LLMs): nothing to poll for
        log_, prepared = self._session.log, {}
        while True:
            await self._quiet(lambda: not log_.computing(), PREPARE_WHEN_FREE_SECS)
            carried = carry_full(self._session.context.get_messages()[self._preamble_len:])
            language = code(self.members[self.current].spec.language)
            for handoff in self.members[self.current].spec.handoffs:
                target = in_language(self.members, handoff.agent, language) or handoff.agent
                prepare = getattr(self.members[target].llm, "prepare", None)
                if handoff.context != "full" or prepare is None or target == self.current:
                    continue
                key = (self.current, len(carried), json.dumps(carried[-1:], sort_keys=True, default=str))
                if prepared.get(target) == key:
                    continue
                try:
                    if await prepare(self._context_for(target, carried),
                                     busy=log_.computing):
                        prepared[target] = key
                except Exception as e:  # unprepared is slower, not wrong
                    log.warning("- preparing agent %s failed: %s", target, type(e).__name__)
            await asyncio.sleep(0.2)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    # -- the handoff ---------------------------------------------------------------
    def _handler(self, source: str, handoff: Handoff) -> Any:
        async def transfer(params: FunctionCallParams) -> None:
            session = self._session
            if self.current != source:  # a second choice in the same answer: one handoff is enough
                await params.result_callback({"error": "already handed over"},
                                             properties=FunctionCallResultProperties(run_llm=False))
                return
            self.handoff_started = asyncio.get_running_loop().time()
            session.log.tool_call(ToolCallRecord(name=handoff.tool_name, arguments=dict(params.arguments or {}),
                                                 result={"handed_to": handoff.agent}))
            if handoff.bridge:  # heard and recorded, but kept out of the context: the incoming
                # agent answers the caller's last words, not the bridge
                await params.llm.push_frame(TTSSpeakFrame(handoff.bridge, append_to_context=False))

            async def switch() -> None:
                await self.switch(handoff.agent, context_mode=handoff.context, source=source)

            await params.result_callback(
                {"handed_to": handoff.agent},
                properties=FunctionCallResultProperties(run_llm=False, on_context_updated=switch))

        return transfer

    async def switch(self, target: str, *, context_mode: str = "full", source: str | None = None,
                     run_llm: bool = True, handoff: bool = True, send: Any = None) -> None:
        """Hand the call to ``target``: its prompt, tools and services; it answers now.
        ``handoff=False``: a switch of language (languages.py), which keeps the turn's
        handoff choice and sends its frames with ``send`` (ahead of the caller's words)."""
        from voxline.orchestration.languages import code, in_language

        session = self._session
        if handoff:  # a Spanish caller passed to bookings gets bookings' Spanish persona
            language = code(self.members[self.current].spec.language)
            target = in_language(self.members, target, language) or target
        member = self.members[target]
        source = source or self.current
        old = self.members[source]
        context = session.context
        conversation = context.get_messages()[self._preamble_len:]
        carried = carry_full(conversation) if context_mode == "full" else carry_summary(conversation, source)
        context.set_messages([*member.preamble, *carried])
        self._preamble_len = len(member.preamble)
        self.current = target
        if handoff:
            self.handoffs += 1
            self._handoff_turn = len(session.log.turns)
        self._advertise(target, handoffs=not handoff)
        self._reground(target)
        # A language switch comes before the caller's turn opens: the turn it opens is the new one's.
        session.log.answered_by(member.spec.name, member.spec.language, this_turn=handoff)
        log.info("%s handed over: %s -> %s (%s, %d messages carried)", session.call_id, source, target,
                 context_mode, len(carried))
        frames: list[Any] = []
        for switcher, new, was in ((self.stt, member.stt, old.stt), (self.llm, member.llm, old.llm),
                                   (self.tts, member.tts, old.tts)):
            if new is not was and isinstance(switcher, ServiceSwitcher):
                frames.append(ManuallySwitchServiceFrame(service=new))
        if run_llm:
            frames.append(LLMRunFrame())
        await (send or session.worker.queue_frames)(frames)


def apply_tool_choice(context: LLMContext, choice: str) -> None:
    """``tool_choice`` of an agent: ``none`` advertises no tools at all (a local model
    then always speaks), ``required`` asks the provider for a tool call."""
    if choice == "none":  # (a tool_choice without tools is an error for some providers)
        context.set_tools(NOT_GIVEN)
        context.set_tool_choice(NOT_GIVEN)
    elif choice == "required" and isinstance(context.tools, ToolsSchema):
        context.set_tool_choice("required")

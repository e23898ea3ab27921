"""The call host: what every transport hands its calls to.

A transport (Twilio stream, web session, SIP dialog) knows its wire protocol and
nothing about agents; it gives the host an :class:`IncomingCall` (who, what, where,
the Pipecat transport and a :class:`~voxline.pipelines.call_control.CallLine`). The
host admits the call under the caps, opens its record and memory, builds the session
on the process's shared resources, wires call control (end, transfer, recording with
consent, the greeting cache), runs it and tears everything down. Every call ends with
its row closed, whatever happened.

    host = CallHost(agents, live=live_state_from_env())
    await host.start(database_url)          # once per worker: store, models, heartbeat
    refusal = await host.admit(call_id, agent)   # at the webhook: None or "busy"
    result = await host.run(incoming)       # when the media starts
    await host.close()
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipecat.adapters.llm.schemas.tools_schema import ToolsSchema
from pipecat.processors.frame_processor import FrameProcessor
from pipecat.processors.frameworks.rtvi import RTVIObserverParams, RTVIProcessor
from pipecat.transports.base_transport import BaseTransport

from voxline.integrations.tools.guard import ToolGuard
from voxline.memory.live import InProcessLiveState, LiveState, read_inbox
from voxline.memory.store import process_owner_id
from voxline.orchestration.human import forwarded_status
from voxline.orchestration.task_relay import adopt_shared_task, outcome_message
from voxline.orchestration.wiring import team_for, wire_orchestration
from voxline.pipelines.builder import Extensions, Services
from voxline.pipelines.call_control import CallControl, CallLine
from voxline.pipelines.call_memory import CallMemory, MemoryRuntime, llm_summarizer
from voxline.pipelines.call_records import CallRecords
from voxline.pipelines.limits import CallLimits
from voxline.pipelines.session import CallResult, CallSession
from voxline.processors.call_log import ToolCallRecord
from voxline.processors.greeting import GreetingCache
from voxline.processors.recording import ConsentPrompt, TwoChannelRecorder
from voxline.spec import AgentSpec

log = logging.getLogger("voxline.host")

DEFAULT_RECORDING_DIR = Path("var/recordings")
ServicesFactory = Callable[[AgentSpec, int], Services]  # spec, input sample rate
HEARTBEAT_SECS = 10.0


@dataclass
class IncomingCall:
    """A call a transport hands to the host. Identity fields are already verified."""

    call_id: str
    agent: str
    channel: str  # twilio | web | sip | sim
    direction: str  # inbound | outbound
    caller: str | None  # the far end's address (number, visitor id)
    dialed: str | None  # our address the call came in on, or the number we called
    transport: BaseTransport
    line: CallLine
    sample_rate: int
    before_llm: list[FrameProcessor] = field(default_factory=list)
    before_output: list[FrameProcessor] = field(default_factory=list)
    after_output: list[FrameProcessor] = field(default_factory=list)
    stats: Callable[[], dict[str, int]] = dict
    caller_key: str | None = None  # who memory knows; default: the caller
    answered_by: str | None = None  # an answering-machine verdict that came before the media
    # Set by the transport when the far end hung up (Twilio `stop`, SIP BYE): ends the call at once.
    hangup: asyncio.Event | None = None
    # An RTVI client (the web widget): its processor and what its observer may send.
    rtvi: RTVIProcessor | None = None
    rtvi_observer_params: RTVIObserverParams | None = None

    @property
    def memory_key(self) -> str | None:
        return self.caller_key or (self.dialed if self.direction == "outbound" else self.caller)


@dataclass
class LiveCall:
    incoming: IncomingCall
    session: CallSession
    control: CallControl
    tasks: set[asyncio.Task[Any]] = field(default_factory=set)

    def spawn(self, coro: Any) -> None:
        """A task that belongs to this call: cancelled when the call ends."""
        task = asyncio.create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)


def default_services(spec: AgentSpec, sample_rate: int) -> Services:
    return Services.from_spec(spec, sample_rate=sample_rate)


def _end_reason(session_reason: str, incoming: IncomingCall) -> str:
    """A media connection that closed without the far end hanging up was dropped."""
    if session_reason in ("caller_hangup", "pipeline_ended"):
        hung_up = incoming.hangup is not None and incoming.hangup.is_set()
        return "caller_hung_up" if hung_up or incoming.hangup is None else "dropped"
    return session_reason


class CallHost:
    def __init__(
        self,
        agents: Mapping[str, AgentSpec],
        *,
        transfer_targets: Mapping[str, Mapping[str, str]] | None = None,
        services: ServicesFactory = default_services,
        greetings: GreetingCache | None = None,
        recording_dir: Path | None = None,
        limits: CallLimits | None = None,
        live: LiveState | None = None,
        remember: bool = True,
        preload: bool = False,
        owner: str | None = None,
    ) -> None:
        self.agents = agents
        self.transfer_targets = transfer_targets or {}
        self.services = services
        self.greetings = greetings or GreetingCache()
        self.recording_dir = recording_dir or DEFAULT_RECORDING_DIR
        self.limits = limits or CallLimits()
        self.live = live or InProcessLiveState()
        self.remember = remember
        self.preload = preload
        self.owner = owner or process_owner_id()  # who holds calls, in the live state
        self.calls: dict[str, LiveCall] = {}
        self.results: dict[str, CallResult | None] = {}  # last finished calls (bounded)
        self.memory: MemoryRuntime | None = None
        self.records: CallRecords | None = None
        self._background: set[asyncio.Task[Any]] = set()
        self.draining = False
        # Numbers routed outside routes.yaml (the platform's, in the database):
        # async (dialed number) -> agent name or None. Transports ask after their table.
        self.route_lookup: Callable[[str], Awaitable[str | None]] | None = None

    async def stored_route(self, dialed: str) -> str | None:
        """The agent a number is routed to by ``route_lookup``; None when there is none
        (or the lookup failed: the caller hears the unknown-number answer, not an error)."""
        if self.route_lookup is None or not dialed:
            return None
        try:
            agent = await self.route_lookup(dialed)
        except Exception as e:  # noqa: BLE001 - a store outage must not fail the webhook
            log.warning("- route lookup failed: %s", type(e).__name__)
            return None
        return agent if agent in self.agents else None

    # -- process lifecycle --------------------------------------------------------
    async def start(self, database_url: str | None = None) -> None:
        """Open the call store, load the agents' models off the loop, start the heartbeat."""
        self.memory = await MemoryRuntime.open(database_url, owner=self.owner)
        self.records = CallRecords(self.memory.store, self.memory.recorder)
        with contextlib.suppress(Exception):  # announce ourselves before judging others
            await self.live.heartbeat(self.owner, [], self.limits.slot_ttl_secs)
        swept = await self.memory.store.sweep_abandoned(is_alive=self._is_alive)
        if swept:
            log.warning("- closed %d call(s) left open by a process that died", len(swept))
        if self.preload:
            from voxline.integrations.providers.local.shared import apreload

            await apreload(list(self.agents.values()))
            await self._prewarm_greetings()
        self._keep(self._heartbeat())
        self._keep(read_inbox(self.live, self.owner, self._on_message))

    async def _prewarm_greetings(self) -> None:
        """Each agent's greeting synthesized once at startup by its local TTS (a cloud
        TTS is not called before a caller needs it): no worker's first caller waits."""
        from voxline.processors.greeting import prewarm

        for spec in self.agents.values():
            if not spec.greeting or spec.engine != "cascade" or spec.tts.provider not in ("piper", "espeak"):
                continue
            try:
                services = self.services(spec, 16000)
                if not await prewarm(self.greetings, spec.name, spec.greeting, services.tts):
                    log.info("- greeting of %s not cached at startup", spec.name)
            except Exception as e:  # noqa: BLE001 - the first call synthesizes it instead
                log.warning("- greeting of %s not cached at startup: %s", spec.name, type(e).__name__)

    async def _is_alive(self, owner: str) -> bool:
        if owner == self.owner:
            return True
        if isinstance(self.live, InProcessLiveState):  # no shared state: ask the OS
            from voxline.memory.store import _local_pid_alive

            return bool(owner) and _local_pid_alive(owner) is not False
        return await self.live.process_alive(owner)

    def _keep(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    async def _heartbeat(self) -> None:
        while True:
            with contextlib.suppress(Exception):  # a Redis blip must not end the loop
                await self.live.heartbeat(self.owner, list(self.calls), self.limits.slot_ttl_secs)
            await asyncio.sleep(HEARTBEAT_SECS)

    async def _on_message(self, message: dict[str, str]) -> None:
        """A message another worker forwarded: a verdict for a call held here, a status for a leg placed here."""
        if message.get("kind") == "answered_by":
            await self.on_answered_by(message.get("call_id", ""), message.get("answered_by", ""))
        elif message.get("kind") == "leg_status":
            forwarded_status(message)
        elif message.get("kind") == "task_outcome":  # of a task call placed here, streamed there
            outcome_message(message)

    async def settle(self) -> None:
        """Wait until ended calls are fully written (summaries and facts included)."""
        pending = [t for t in self._background if getattr(t, "settles", False)]
        await asyncio.gather(*pending, return_exceptions=True)
        if self.memory is not None:
            await self.memory.recorder.flush()

    async def close(self) -> None:
        await self.settle()
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        if self.memory is not None:
            await self.memory.close()
            self.memory = None

    # -- admission ------------------------------------------------------------------
    def spec(self, agent: str | None) -> AgentSpec | None:
        return self.agents.get(agent or "")

    async def admit(self, call_id: str, agent: str) -> str | None:
        """Reserve the call's place under the caps; None, or why not ("busy", "draining")."""
        spec = self.agents[agent]
        if self.draining:
            return "draining"
        for key, cap in self.limits.caps(spec):
            if not await self.live.acquire_slot(key, call_id, cap, self.limits.reserve_secs):
                await self.release(call_id, agent)
                log.info("%s refused: %s is at its cap of %d calls", call_id, key, cap)
                return "busy"
        return None

    async def release(self, call_id: str, agent: str) -> None:
        spec = self.agents.get(agent)
        if spec is not None:
            for key, _ in self.limits.caps(spec):
                with contextlib.suppress(Exception):
                    await self.live.release_slot(key, call_id)

    async def announce(self, call_id: str, *, agent: str, channel: str, direction: str,
                       from_: str | None, to: str | None, status: str) -> None:
        """Open the record of a call that is ringing or being placed."""
        spec = self.agents[agent]
        if self.records is not None and spec.memory.enabled:
            await self.records.announce(call_id, tenant=spec.memory.tenant, agent=agent, channel=channel,
                                        direction=direction, from_=from_, to=to, status=status)

    # -- one call ------------------------------------------------------------------
    async def run(self, incoming: IncomingCall) -> CallResult | None:
        """Run the call until it ends; its record is closed whatever happens."""
        spec = self.agents[incoming.agent]
        call_id, reason = incoming.call_id, "failed"
        if call_id in self.calls:  # a second connection for a call served here: its row is not ours
            log.warning("%s refused: the call is already served here", call_id)
            return None
        if len(self.calls) >= self.limits.max_calls_per_worker or self.draining:
            log.warning("%s refused: this worker holds %d calls", call_id, len(self.calls))
            await self._close_record(incoming, "busy")
            return None
        if not await self.live.claim_call(call_id, self.owner, self.limits.slot_ttl_secs):
            log.warning("%s refused: the call is already served by another process", call_id)
            return None
        if await self.admit(call_id, incoming.agent) is not None:  # refreshes the reservation
            await self.live.release_call(call_id, self.owner)
            await self._close_record(incoming, "busy")
            return None
        memory: CallMemory | None = None
        live: LiveCall | None = None
        result: CallResult | None = None
        try:
            memory = await self._open_memory(spec, incoming)
            live = self._build(spec, incoming, memory)
            self.calls[call_id] = live
            if incoming.direction == "outbound":  # a task call placed by another worker?
                await adopt_shared_task(self, live.session, call_id, incoming.agent)
            if incoming.answered_by:
                await self.on_answered_by(call_id, incoming.answered_by)
            if incoming.hangup is not None:
                live.spawn(self._end_on_hangup(live, incoming.hangup))
            result = await live.session.run()
            reason = live.control.end_reason or _end_reason(result.end_reason, incoming)
        except asyncio.CancelledError:
            reason = "dropped"  # the server is shutting down
            raise
        except Exception:
            log.exception("%s call failed", call_id)
        finally:
            self.calls.pop(call_id, None)
            if live is not None:
                for task in list(live.tasks):
                    task.cancel()
                await asyncio.gather(*live.tasks, return_exceptions=True)
            await self._close_record(incoming, reason)
            await self.release(call_id, incoming.agent)
            with contextlib.suppress(Exception):
                await self.live.release_call(call_id, self.owner)
            if memory is not None:  # summaries take an LLM pass: off the call's path
                llm = live.session.services.llm if live is not None else None
                task = self._keep(memory.finish(result, summarize=llm_summarizer(llm) if llm else None))
                task.settles = True  # type: ignore[attr-defined]
            self.results[call_id] = result
            while len(self.results) > self.limits.results_kept:
                self.results.pop(next(iter(self.results)))
        log.info("%s call ended: %s after %d turns", call_id, reason, len(result.turns) if result else 0)
        return result

    async def _end_on_hangup(self, live: LiveCall, hangup: asyncio.Event) -> None:
        await hangup.wait()
        await live.session.end("caller_hung_up", now=True)

    async def _close_record(self, incoming: IncomingCall, reason: str) -> None:
        if self.records is not None and self.agents[incoming.agent].memory.enabled:
            await self.records.close(incoming.call_id, reason=reason, stats=incoming.stats())

    async def _open_memory(self, spec: AgentSpec, incoming: IncomingCall) -> CallMemory | None:
        if self.memory is None:
            return None
        overrides = {} if self.remember else {"recall": False, "remember": False}
        return await CallMemory.open(
            runtime=self.memory, agent=spec, call_id=incoming.call_id, caller_key=incoming.memory_key,
            channel=incoming.channel, direction=incoming.direction, from_=incoming.caller,
            to=incoming.dialed, **overrides,
        )

    def _build(self, spec: AgentSpec, incoming: IncomingCall, memory: CallMemory | None) -> LiveCall:
        services = self.services(spec, incoming.sample_rate)
        recording = spec.phone.recording
        # Caller audio is needed up to the user aggregator (VAD, turns), and by the
        # recorder after the output; without a recorder, it stops at the intercept.
        intercept, replay = self.greetings.processors(spec.name, spec.greeting,
                                                      drop_input_audio=not recording.enabled)
        after_output: list[Any] = []
        before_tts: list[Any] = [intercept]
        if recording.enabled:
            after_output.append(TwoChannelRecorder(self.recording_dir, incoming.call_id,
                                                   sample_rate=incoming.sample_rate).processor)
            if recording.consent:
                before_tts.insert(0, ConsentPrompt(recording.consent, name=f"Consent#{incoming.call_id}"))
        extensions = Extensions(
            before_llm=list(incoming.before_llm),
            before_tts=before_tts,
            before_output=[replay, *incoming.before_output],
            after_output=[*after_output, *incoming.after_output],
        )
        session = CallSession(
            spec, incoming.transport, call_id=incoming.call_id, caller_id=incoming.caller,
            services=services, extensions=extensions,
            audio_in_sample_rate=incoming.sample_rate, audio_out_sample_rate=incoming.sample_rate,
            extra_context=memory.extra_context if memory else None,
            on_turn=memory.on_turn if memory else None,
            team=team_for(spec, self.agents, services, lambda s: self.services(s, incoming.sample_rate)),
            rtvi=incoming.rtvi, rtvi_observer_params=incoming.rtvi_observer_params,
        )
        control = CallControl(incoming.line, transfer_targets=self.transfer_targets.get(spec.name, {}))
        live = LiveCall(incoming, session, control)
        self._wire_tools(spec, live)
        return live

    def _wire_tools(self, spec: AgentSpec, live: LiveCall) -> None:
        """Line versions of the built-in tools: act on the line once the words were heard.

        The builder registered ``end_call`` (pipeline end only); registering again
        replaces it. ``transfer_call`` is added to the advertised tools here.
        """
        session, control = live.session, live.control

        async def on_end(reason: str) -> None:
            await session.end(reason)

        async def on_transfer(target: str) -> None:
            if self.records is not None and spec.memory.enabled:
                await self.records.set_transfer(live.incoming.call_id, target)

        def tool_log(name: str, arguments: dict[str, Any], result: Any) -> None:
            session.log.tool_call(ToolCallRecord(name=name, arguments=arguments, result=result))

        control.on_end, control.on_transfer, control.tool_log = on_end, on_transfer, tool_log
        ToolGuard.of(session.log, spec).use_live(self.live, spec.memory.tenant)  # tenant rate limits
        wire_orchestration(self, spec, live)  # handoff to humans, knowledge, task calls
        handlers = {t.handler for t in spec.tools}
        llm = session.services.llm
        if "builtin:end_call" in handlers:
            llm.register_function("end_call", control.end_call, cancel_on_interruption=True)
        if "builtin:transfer_call" in handlers:
            llm.register_function("transfer_call", control.transfer_call, cancel_on_interruption=True)
            tools = session.context.tools
            schemas = list(tools.standard_tools) if isinstance(tools, ToolsSchema) else []
            if not any(s.name == "transfer_call" for s in schemas):
                session.context.set_tools(ToolsSchema(standard_tools=[*schemas, control.transfer_schema()]))
            if session.team is not None:  # advertised again whenever this agent answers
                session.team.builtin_schemas["transfer_call"] = control.transfer_schema()

    # -- carrier events -------------------------------------------------------------
    async def on_answered_by(self, call_id: str, answered_by: str) -> None:
        """An answering-machine verdict: act here, or forward it to the process holding the call."""
        live = self.calls.get(call_id)
        if live is None:
            owner = await self.live.owner_of(call_id)
            if owner and owner != self.owner:
                await self.live.send(owner, {"kind": "answered_by", "call_id": call_id,
                                             "answered_by": answered_by})
            return
        handler = getattr(live.incoming.line, "on_answered_by", None)
        if handler is not None:
            live.spawn(handler(live.control, live.session, answered_by))

    @property
    def active_calls(self) -> int:
        return len(self.calls)

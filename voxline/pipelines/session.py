"""A call session: one call, one pipeline, from greeting to teardown.

The session owns what Pipecat leaves to the application: the greeting, reprompting
a silent caller and hanging up after too many reprompts, the call-length limit, the
``end_call`` tool, and a record of every turn. Every task it starts is held and
cancelled when the call ends, so a finished call leaves nothing running.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from pipecat.frames.frames import EndFrame, TTSSpeakFrame
from pipecat.pipeline.worker import PipelineParams, PipelineWorker
from pipecat.processors.frameworks.rtvi import RTVIObserverParams, RTVIProcessor
from pipecat.transports.base_transport import BaseTransport
from pipecat.workers.runner import WorkerRunner

from voxline.integrations.tools.guard import ToolGuard
from voxline.orchestration.handoff import Team, apply_tool_choice, sibling_agents
from voxline.orchestration.wiring import wire_builtins
from voxline.pipelines.builder import Extensions, Services, build_pipeline
from voxline.processors.call_log import CallLog, TurnRecord
from voxline.spec import AgentSpec

logger = logging.getLogger("voxline.session")

TIME_LIMIT_SAY = "We've reached the time limit for this call. Thank you for calling, goodbye!"


@dataclass
class CallResult:
    call_id: str
    agent: str
    end_reason: str
    started_at: float
    ended_at: float
    turns: list[TurnRecord]


class CallSession:
    """Runs one call of ``spec`` over ``transport``; ``await session.run()`` until it ends."""

    def __init__(
        self,
        spec: AgentSpec,
        transport: BaseTransport,
        *,
        call_id: str | None = None,
        caller_id: str | None = None,
        services: Services | None = None,
        extensions: Extensions | None = None,
        extra_context: list[str] | None = None,
        on_turn: Callable[[TurnRecord], Awaitable[None]] | None = None,
        audio_in_sample_rate: int = 16000,
        audio_out_sample_rate: int = 16000,
        observers: list | None = None,
        team: Team | None = None,
        rtvi: RTVIProcessor | None = None,
        rtvi_observer_params: RTVIObserverParams | None = None,
    ):
        self.spec = spec
        self.call_id = call_id or uuid.uuid4().hex
        self.caller_id = caller_id
        self.log = CallLog(on_turn_closed=on_turn, agent=spec.name, language=spec.language)
        ToolGuard.of(self.log, spec)  # the call's tool limits: rate, cost cap (the entry agent's)
        if team is None and (spec.handoffs or spec.languages):  # agents it may hand over to, personas
            team = Team.build(spec, sibling_agents(spec),
                              lambda s: services if s is spec and services else Services.from_spec(s))
        self.team = team  # several agents answer this call (voxline.orchestration.handoff)
        self.services = team.services if team is not None else services or Services.from_spec(spec)
        self.end_reason: str | None = None
        self.started_at = time.time()
        self._reprompts = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._ended = asyncio.Event()
        self.started = asyncio.Event()  # set once the pipeline runs and the greeting is queued
        self.end_grace_secs = 30.0  # longest goodbye we wait for before cancelling

        pipeline, aggregators = build_pipeline(
            spec, transport, self.services, self.log,
            extensions=extensions, extra_context=extra_context or [],
        )
        self.context = aggregators.user().context
        self.pipeline = pipeline
        self.worker = PipelineWorker(
            pipeline,
            params=PipelineParams(
                audio_in_sample_rate=audio_in_sample_rate,
                audio_out_sample_rate=audio_out_sample_rate,
                enable_metrics=True,
                enable_usage_metrics=True,  # per-turn usage and cost (processors/usage.py)
            ),
            observers=[self.log, *(observers or [])],
            app_resources=self,
            idle_timeout_secs=None,  # idleness is ours to handle: reprompt, then hang up
            # Phone calls have no RTVI client; a web call brings its processor, and the
            # worker puts it at the head of the pipeline with its observer (Pipecat's way).
            enable_rtvi=rtvi is not None,
            rtvi_processor=rtvi,
            rtvi_observer_params=rtvi_observer_params,
            enable_turn_tracking=False,  # CallLog keeps the turns; one observer less per frame
            conversation_id=self.call_id,
        )
        if team is not None:
            team.attach(self, extra_context or [])
        elif spec.tool_choice != "auto":
            apply_tool_choice(self.context, spec.tool_choice)
        wire_builtins(self)  # knowledge, humans, task calls (the call host wires its own again)
        self._wire(aggregators, transport)

    def _spawn(self, coro: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _wire(self, aggregators, transport: BaseTransport) -> None:
        user = aggregators.user()

        @user.event_handler("on_user_turn_stopped")
        async def _user_stopped(_agg, _strategy, message) -> None:
            self._reprompts = 0
            await self.log.user_turn(message.content or "")

        @user.event_handler("on_user_turn_idle")
        async def _idle(_agg) -> None:
            await self._on_idle()

        @self.worker.event_handler("on_pipeline_started")
        async def _started(_worker, _frame) -> None:
            self.started_at = time.time()
            if self.spec.greeting:
                await self.worker.queue_frame(TTSSpeakFrame(self.spec.greeting))
            warm_up = getattr(self.services.llm, "warm_up", None)
            if warm_up is not None and self.context is not None:
                self._spawn(warm_up(self.context))
            self._spawn(self._enforce_time_limit())
            self.started.set()

        @self.worker.event_handler("on_pipeline_error")
        async def _error(_worker, frame) -> None:
            # A fatal error cancels the pipeline: the call failed, whoever hangs up after.
            if frame.fatal and self.end_reason is None:
                self.end_reason = "pipeline_error"
                logger.warning("%s call ending: pipeline_error", self.call_id)

        for name in ("on_client_disconnected", "on_participant_left"):
            if name in transport._event_handlers:  # transports differ in what they announce
                transport.add_event_handler(name, self._on_disconnected)

    async def _on_disconnected(self, *_args) -> None:
        await self.end("caller_hangup", now=True)

    async def _on_idle(self) -> None:
        idle = self.spec.idle
        if self._reprompts < idle.max_reprompts:
            self._reprompts += 1
            await self.worker.queue_frame(TTSSpeakFrame(idle.reprompt))
        else:
            await self.end("caller_silent", speak=idle.goodbye)

    async def _enforce_time_limit(self) -> None:
        await asyncio.sleep(self.spec.limits.max_call_secs)
        await self.end("max_duration", speak=TIME_LIMIT_SAY)

    async def end(self, reason: str, *, speak: str | None = None, now: bool = False) -> None:
        """End the call once (later calls are no-ops), after ``speak`` has been played;
        ``now`` cancels the pipeline at once (the far end is gone: nothing to play to)."""
        if self.end_reason is not None:
            if now:
                await self.worker.cancel(reason=reason)
            return
        self.end_reason = reason
        logger.info("%s call ending: %s", self.call_id, reason)
        if now:
            await self.worker.cancel(reason=reason)
            return
        if speak:
            await self.worker.queue_frame(TTSSpeakFrame(speak))
        await self.worker.queue_frame(EndFrame())
        # A pipeline that cannot drain (a stalled peer, a stuck service) still ends.
        self._spawn(self._cancel_after(self.end_grace_secs))

    async def _cancel_after(self, secs: float) -> None:
        await asyncio.sleep(secs)
        if not self._ended.is_set():
            logger.warning("%s did not end within %.0f s: cancelling", self.call_id, secs)
            await self.worker.cancel(reason="end timeout")

    async def run(self) -> CallResult:
        runner = WorkerRunner(handle_sigint=False, check_dangling_tasks=False)
        try:
            await runner.add_workers(self.worker)
            await runner.run()
        finally:
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            if self.team is not None:
                await self.team.close()
            self.end_reason = self.end_reason or "pipeline_ended"
            await self.log.close_turn()
            self._ended.set()
        return CallResult(
            call_id=self.call_id, agent=self.spec.name, end_reason=self.end_reason,
            started_at=self.started_at, ended_at=time.time(), turns=list(self.log.turns),
        )

    async def wait_ended(self) -> None:
        await self._ended.wait()

    @property
    def ended(self) -> bool:
        return self._ended.is_set()

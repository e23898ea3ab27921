"""Outbound task calls that report back: ``builtin:call_task`` and ``builtin:report_outcome``.

The concierge's tool places a call with a *task agent* ("call the restaurant and book a
table for 4 on Friday at 8"): the task is added to the task agent's prompt, the call
runs like any other, and the task agent ends it with ``report_outcome`` (done or
failed, a confirmation, details). The tool waits for that outcome (bounded by
``tasks.calls.timeout_secs``) and returns it to the agent that asked, which tells its
caller. The number is picked by label from ``tasks.calls.numbers``: the model never
dials a number of its own.

Who places the call is a :class:`Dialer`: the call host's (``host.dialer``; for Twilio,
an outbound call through the REST API with the task agent on its stream) or, for
``voxline simulate`` and tests, :class:`LoopbackDialer`, which runs the task agent's
session on a simulated line whose far end is scripted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from pipecat.adapters.llm.schemas.function_schema import FunctionSchema

from voxline.errors import ToolError
from voxline.integrations.tools.runtime import Told
from voxline.orchestration.settings import TaskSettings
from voxline.spec import AgentSpec

log = logging.getLogger("voxline.orchestration")

TASK_PROMPT = ("You are placing this call for a client. Your task: {task}\n"
               "Do it politely and briefly. Once the other side has answered, call report_outcome "
               "with what was agreed (status done, with any confirmation number) or why it could not be "
               "done (status failed).")
NO_OUTCOME = {"status": "failed", "details": "the call ended without an outcome"}


def task_schema(settings: TaskSettings) -> FunctionSchema:
    places = list(settings.numbers)
    return FunctionSchema(
        name="call_task",
        description="Phone a business for the caller and do a task there (book, ask, change), "
                    "then report what happened.",
        properties={
            "place": {"type": "string", "enum": places, "description": "Whom to call."},
            "task": {"type": "string", "description": "What to do on the call, with every detail."},
        },
        required=["place", "task"] if len(places) > 1 else ["task"],
    )


class Dialer(Protocol):
    async def dial(self, *, agent: AgentSpec, to: str, task: str, parent_call_id: str) -> dict[str, Any]:
        """Run a task call to ``to`` with ``agent``; its reported outcome."""


async def report_outcome(session: Any, arguments: dict[str, Any]) -> Any:
    """The task agent's report: kept on its session, then it says goodbye and hangs up."""
    outcome = {k: v for k, v in arguments.items() if k in ("status", "confirmation", "details")}
    session.task_outcome = outcome
    await session.end("task_reported", speak="Thank you, goodbye!")
    return Told(outcome)


class TaskCaller:
    def __init__(self, spec: AgentSpec, session: Any, *, host: Any = None) -> None:
        assert spec.tasks.calls is not None
        self.settings, self.session, self.host = spec.tasks.calls, session, host
        self.spec = spec

    def _agent(self) -> AgentSpec:
        agents = getattr(self.host, "agents", None)
        if agents is None:
            from voxline.orchestration.handoff import sibling_agents

            agents = sibling_agents(self.spec)
        agent = agents.get(self.settings.agent)
        if agent is None:
            raise ToolError(f"no task agent {self.settings.agent!r}")
        return agent  # type: ignore[no-any-return]

    async def run(self, arguments: dict[str, Any]) -> Any:
        from pipecat.frames.frames import TTSSpeakFrame

        places = self.settings.numbers
        place = str(arguments.get("place") or next(iter(places)))
        number = places.get(place)
        if number is None:
            raise ToolError(f"no number for {place!r}; known: {', '.join(places)}")
        dialer = getattr(self.host, "dialer", None) or getattr(self.session, "dialer", None)
        if dialer is None:
            raise ToolError("no dialer: this line cannot place task calls")
        await self.session.worker.queue_frame(TTSSpeakFrame(self.settings.say_while_calling))
        started = time.monotonic()
        try:
            outcome = await asyncio.wait_for(
                dialer.dial(agent=self._agent(), to=number, task=str(arguments.get("task") or ""),
                            parent_call_id=self.session.call_id),
                self.settings.timeout_secs)
        except TimeoutError:
            outcome = {"status": "failed", "details": f"no outcome within {self.settings.timeout_secs:g} s"}
        log.info("%s task call to %s: %s after %.1f s", self.session.call_id, place, outcome.get("status"),
                 time.monotonic() - started)
        return {"place": place, **outcome}


# -- both sides on loopback --------------------------------------------------------------


@dataclass
class ScriptedCallee:
    """The far end of a task call: says each line once the agent has finished speaking."""

    lines: list[str]
    quiet_secs: float = 0.8
    answers_first: bool = True  # a business picks up with its name
    heard: list[float] = field(default_factory=list)

    async def run(self, line: Any, session: Any) -> None:
        from voxline.audio import synthesize

        await session.started.wait()
        for i, text in enumerate(self.lines):
            if i or not self.answers_first:
                await self._wait_agent_done(line, session)
            if session.ended:
                return
            sent = line.say(synthesize(text, line.sample_rate))
            await sent.wait()

    async def _wait_agent_done(self, line: Any, session: Any) -> None:
        since = time.monotonic()
        while not session.ended:
            await asyncio.sleep(0.05)
            spoke = line.first_speech_after(since)
            idle = time.monotonic() - max(session.log.last_activity, since)
            if spoke is not None and not session.log.busy() and idle >= self.quiet_secs:
                return


class LoopbackDialer:
    """Task calls in process: the task agent on a simulated line, a scripted callee."""

    def __init__(self, callees: Mapping[str, Callable[[], ScriptedCallee]], *,
                 services: Callable[[AgentSpec], Any] | None = None, sample_rate: int = 16000) -> None:
        self.callees = callees
        self.services = services
        self.sample_rate = sample_rate
        self.calls: list[dict[str, Any]] = []

    async def dial(self, *, agent: AgentSpec, to: str, task: str, parent_call_id: str) -> dict[str, Any]:
        from voxline.pipelines.session import CallSession
        from voxline.transports.simulated import CallerLine, SimulatedTransport

        make = self.callees.get(to)
        if make is None:
            return {"status": "failed", "details": "nobody answered"}
        line = CallerLine(sample_rate=self.sample_rate)
        session = CallSession(
            agent, SimulatedTransport(line), call_id=f"task-{uuid.uuid4().hex[:12]}", caller_id=to,
            services=self.services(agent) if self.services else None,
            extra_context=[TASK_PROMPT.format(task=task)],
            audio_in_sample_rate=self.sample_rate, audio_out_sample_rate=self.sample_rate,
        )
        callee = asyncio.ensure_future(make().run(line, session))
        try:
            result = await session.run()
        finally:
            callee.cancel()
            await asyncio.gather(callee, return_exceptions=True)
        outcome = dict(getattr(session, "task_outcome", None) or NO_OUTCOME)
        self.calls.append({"to": to, "task": task, "parent": parent_call_id, "outcome": outcome,
                           "turns": [(t.user_text, t.agent_text) for t in result.turns],
                           "end_reason": result.end_reason})
        return outcome


# -- on the phone: Twilio ---------------------------------------------------------------


@dataclass
class _Pending:
    task: str
    done: asyncio.Future[dict[str, Any]]
    token: str = field(default_factory=lambda: secrets.token_hex(16))  # the worker streaming it echoes it


_pending: dict[str, _Pending] = {}  # CallSid of a task call placed here -> its task
NEVER_CONNECTED = {"busy": "the line was busy", "no-answer": "nobody answered", "failed": "the call failed",
                   "canceled": "the call was cancelled"}
# The placing worker holds TASK_KEY + CallSid in the live state for the callbacks other
# workers get; Twilio reports a call that never connected within its ring timeout (60 s).
TASK_KEY, PLACED_TTL_SECS = "task:", 120.0


def task_status(call_sid: str, status: str) -> None:
    """A Twilio status callback: a task call that never connected has its outcome now.

    It may have landed on another worker, which forwards it here
    (:func:`voxline.orchestration.human.placed_status`)."""
    pending = _pending.get(call_sid)
    if pending is not None and status in NEVER_CONNECTED and not pending.done.done():
        pending.done.set_result({"status": "failed", "details": NEVER_CONNECTED[status]})


def adopt_task_call(session: Any, call_id: str) -> bool:
    """The call host runs call ``call_id``: if it is a task call placed here, give its
    agent the task and report its outcome when it ends. True if it was one.

    A task call placed by another worker is adopted from the live state
    (:func:`voxline.orchestration.task_relay.adopt_shared_task`)."""
    pending = _pending.get(call_id)
    if pending is None:
        return False

    def finished(outcome: dict[str, Any]) -> None:
        if not pending.done.done():
            pending.done.set_result(outcome)

    give_task(session, pending.task, finished)
    return True


def give_task(session: Any, task: str, finished: Callable[[dict[str, Any]], Any]) -> None:
    """Add ``task`` to the agent's prompt; ``finished(outcome)`` when the call ends (awaited if it is a coroutine)."""
    messages = session.context.get_messages()
    if messages and messages[0].get("role") == "system":
        messages[0] = {**messages[0], "content": f"{messages[0]['content']}\n\n{TASK_PROMPT.format(task=task)}"}
        session.context.set_messages(messages)

    async def on_finished(*_args: Any) -> None:
        done = finished(dict(getattr(session, "task_outcome", None) or NO_OUTCOME))
        if asyncio.iscoroutine(done):
            await done

    session.worker.add_event_handler("on_pipeline_finished", on_finished)


class TwilioDialer:
    """Task calls over Twilio: an outbound call with the task agent on its stream.

    ``host.dialer = TwilioDialer(host, rest, public_base_url=..., caller_id=...)`` where the
    server builds its Twilio router; the task reaches the agent when its stream starts
    (``adopt_task_call``, from the host's orchestration wiring) and the outcome comes back
    when the call ends, or at once when Twilio reports it never connected."""

    def __init__(self, host: Any, rest: Any, *, public_base_url: str,
                 caller_id: str | Callable[[str], str | None] | None = None) -> None:
        self.host, self.rest, self.public_base_url = host, rest, public_base_url
        self.caller_id = caller_id

    def _from(self, agent: str) -> str:
        number = self.caller_id(agent) if callable(self.caller_id) else self.caller_id
        if not number:
            raise ToolError(f"no caller id for task calls of agent {agent!r}")
        return number

    async def dial(self, *, agent: AgentSpec, to: str, task: str, parent_call_id: str) -> dict[str, Any]:
        from voxline.orchestration.task_relay import MAX_TASK_CHARS, share_task
        from voxline.transports.twilio.router import place_outbound_call

        if len(task) > MAX_TASK_CHARS:
            raise ToolError(f"the task is longer than {MAX_TASK_CHARS} characters: say it shorter")
        done: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        sid = await place_outbound_call(host=self.host, rest=self.rest, to=to, from_=self._from(agent.name),
                                        agent=agent.name, public_base_url=self.public_base_url)
        _pending[sid] = pending = _Pending(task, done)
        live, owner = self.host.live, self.host.owner
        log.info("%s task call %s placed for %s", parent_call_id, sid, agent.name)
        try:
            # Held under its own key (the stream's holder claims the call itself): a "busy"
            # or "no-answer" that reaches another worker is forwarded here. The task is
            # kept beside it for the worker whose stream it will be, which reports back.
            with contextlib.suppress(Exception):  # without it, only a stream on this worker has the task
                await share_task(live, sid, task=task, agent=agent.name, owner=owner, token=pending.token,
                                 ttl_s=PLACED_TTL_SECS)
            with contextlib.suppress(Exception):  # without it, this worker's callbacks still count
                await live.claim_call(TASK_KEY + sid, owner, PLACED_TTL_SECS)
            return await done
        finally:
            _pending.pop(sid, None)
            with contextlib.suppress(Exception):  # else it lapses by itself
                await live.release_call(TASK_KEY + sid, owner)

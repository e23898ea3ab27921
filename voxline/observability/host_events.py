"""Call events from the call host: started, turn closed, handoff, ended.

Metrics, traces, webhooks and the platform's bookkeeping listen to one stream of
events. Listeners are plain synchronous callbacks that must return at once (a
listener that has work to do hands it to a task of its own); one that raises is
logged and never disturbs the call.

When the host offers ``host.listeners`` (a list it calls itself), listeners are added
there. Until then :func:`attach` observes the host instance from outside: it wraps
its ``_build`` (the call's session is built: call started), the session's turn
callback, the call control's transfer callback and ``run`` (the call ended). Only
this module knows those names.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

from voxline.processors.call_log import TurnRecord
from voxline.spec import AgentSpec

log = logging.getLogger("voxline.observability")


@dataclass
class CallInfo:
    """What listeners know of a call. ``caller`` is for webhooks only: never a label or a log."""

    call_id: str
    tenant: str
    agent: str
    channel: str
    direction: str
    spec: AgentSpec
    caller: str | None = None
    dialed: str | None = None
    started: float = field(default_factory=time.time)
    recall_skipped: bool = False
    recall_ms: float = 0.0


class CallListener(Protocol):
    def call_started(self, call: CallInfo) -> None: ...
    def turn_closed(self, call: CallInfo, turn: TurnRecord) -> None: ...
    def handoff_requested(self, call: CallInfo, target: str) -> None: ...
    def call_ended(self, call: CallInfo, reason: str, result: Any) -> None: ...
    def call_refused(self, tenant: str, agent: str, reason: str) -> None: ...


class BaseListener:
    """Does nothing; listeners override what they need."""

    def call_started(self, call: CallInfo) -> None:
        pass

    def turn_closed(self, call: CallInfo, turn: TurnRecord) -> None:
        pass

    def handoff_requested(self, call: CallInfo, target: str) -> None:
        pass

    def call_ended(self, call: CallInfo, reason: str, result: Any) -> None:
        pass

    def call_refused(self, tenant: str, agent: str, reason: str) -> None:
        pass


class HostEvents:
    """Fans the host's call events out to listeners."""

    def __init__(self) -> None:
        self.listeners: list[Any] = []
        self.calls: dict[str, CallInfo] = {}
        self._lives: dict[str, Any] = {}

    def add(self, listener: Any) -> None:
        self.listeners.append(listener)

    def emit(self, name: str, *args: Any) -> None:
        for listener in self.listeners:
            try:
                getattr(listener, name)(*args)
            except Exception:
                log.exception("- %s listener %s failed", name, type(listener).__name__)

    # -- observing a CallHost from outside ---------------------------------------------
    def attach(self, host: Any) -> None:
        if isinstance(getattr(host, "listeners", None), list):  # the host emits events itself
            host.listeners.append(self)
            return
        build, run, admit = host._build, host.run, host.admit

        def _build(spec: AgentSpec, incoming: Any, memory: Any) -> Any:
            live = build(spec, incoming, memory)
            try:
                self._on_built(spec, incoming, memory, live)
            except Exception:
                log.exception("%s call events: wiring failed", incoming.call_id)
            return live

        async def _run(incoming: Any) -> Any:
            result = None
            reason = "failed"
            try:
                result = await run(incoming)
                return result
            except asyncio.CancelledError:
                reason = "dropped"
                raise
            finally:
                live = self._lives.pop(incoming.call_id, None)
                call = self.calls.pop(incoming.call_id, None)
                if call is not None:
                    if live is not None and result is not None:
                        reason = _reason(live, result, incoming)
                    self.emit("call_ended", call, reason, result)

        async def _admit(call_id: str, agent: str) -> str | None:
            refusal = await admit(call_id, agent)
            if refusal is not None:
                spec = host.agents.get(agent)
                self.emit("call_refused", spec.memory.tenant if spec else "-", agent, refusal)
            return refusal

        host._build, host.run, host.admit = _build, _run, _admit

    def _on_built(self, spec: AgentSpec, incoming: Any, memory: Any, live: Any) -> None:
        call = CallInfo(
            call_id=incoming.call_id, tenant=spec.memory.tenant, agent=spec.name, channel=incoming.channel,
            direction=incoming.direction, spec=spec, caller=incoming.caller, dialed=incoming.dialed,
            recall_skipped=bool(getattr(memory, "recall_skipped", False)),
            recall_ms=float(getattr(memory, "recall_ms", 0.0) or 0.0),
        )
        self.calls[call.call_id] = call
        self._lives[call.call_id] = live
        call_log = live.session.log
        on_turn = call_log._on_turn_closed

        async def turn_closed(turn: TurnRecord) -> None:
            if on_turn is not None:
                await on_turn(turn)
            self.emit("turn_closed", call, turn)

        call_log._on_turn_closed = turn_closed
        control = live.control
        on_transfer = control.on_transfer

        async def transfer(target: str) -> None:
            self.emit("handoff_requested", call, target)
            if on_transfer is not None:
                await on_transfer(target)

        control.on_transfer = transfer
        self.emit("call_started", call)


def _reason(live: Any, result: Any, incoming: Any) -> str:
    """The end reason the host stores for the call (see CallHost.run)."""
    from voxline.pipelines.host import _end_reason

    return live.control.end_reason or _end_reason(result.end_reason, incoming)

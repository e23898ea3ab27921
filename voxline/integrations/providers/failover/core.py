"""The failover machinery every stage shares: members, attempts, timers, retries, probes.

A stage's chain (``llm: [a, b, c]``) becomes one :class:`FailoverService`: Pipecat's
``ServiceSwitcher`` with a branch per provider, each branch laid out
``gate → service → tap``. The gate lets in what the active provider should see; the tap
lets out only what the provider serving the turn produced. Both run in direct mode
(inline, in the pushing task), so what a service said is judged in the order it said it.

Pipecat's failover strategy switches only when a service marks itself unusable
(pipecat#5340). Here a turn in progress is an *attempt* on one member, and it fails on:

- an error the service reports (translated by :func:`voxline.errors.translate`):
  retryable ones (5xx, 429, 408, connection) are retried on the same member up to
  ``retry.attempts`` with doubling ``backoff_secs``, then the next member takes over;
  permanent ones (other 4xx) hand over at once;
- no first byte within ``attempt_timeout_secs``, or a gap mid-answer longer than
  ``stall_timeout_secs`` (checked only while a next member exists: the last one is
  waited for, as a lone provider would be).

The stage (llm.py, tts.py, stt.py) redoes the turn on the next member: the LLM runs
the same context again (or continues what the caller already heard), the TTS
synthesizes the text not spoken yet, the STT is given the utterance's audio again.
A member that failed is probed in the background (bounded, with backoff) and taken
back at the next turn once healthy. A member with a probe (every cloud provider) has
its health kept per worker (health.py): a call that starts while it is down starts on
the next member, and one probe serves every call. Every switch is announced with a
:class:`FailoverFrame`, which the call log counts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Any

from pipecat.frames.frames import (
    CancelFrame,
    EndFrame,
    ErrorFrame,
    Frame,
    InterruptionFrame,
    ServiceMetadataFrame,
    StartFrame,
    SystemFrame,
)
from pipecat.pipeline.service_switcher import ServiceSwitcher, ServiceSwitcherStrategy
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

from voxline.errors import ProviderError, ProviderStalled, ProviderTimeout, translate
from voxline.integrations.providers.failover.health import Key, Probe, board
from voxline.spec import ProviderBlock

log = logging.getLogger("voxline.failover")

LIFECYCLE = (StartFrame, EndFrame, CancelFrame)
RECONNECT_SECS = 3.0
DOWN, UP = FrameDirection.DOWNSTREAM, FrameDirection.UPSTREAM


@dataclass
class FailoverFrame(SystemFrame):
    """A stage moved a turn from one provider to the next (or gave up: ``to_provider`` None)."""

    stage: str = ""
    from_provider: str = ""
    to_provider: str | None = None
    reason: str = ""
    failed_service: Any = None  # the member that failed (the call log forgets its open answer)
    during_turn: bool = True  # False: between turns; it counts for the next turn the stage serves


@dataclass
class Member:
    """One provider of a chain: its service, its block (and retry settings), its health."""

    index: int
    service: FrameProcessor
    provider: str
    block: ProviderBlock
    probe: Probe | None = None
    key: Key | None = None  # with a probe: the worker's health board knows it by this
    failed_here: bool = False  # failed in this call (its service needs a fresh start)
    failures: int = 0

    @property
    def retry(self) -> Any:
        return self.block.retry

    @property
    def healthy(self) -> bool:
        if self.failed_here:
            return False
        if self.key is None:
            return True
        try:
            return board().healthy(self.key)
        except RuntimeError:  # no event loop: nothing has run, nothing has failed
            return True

    def __repr__(self) -> str:
        return f"{self.provider}#{self.index}"


@dataclass(eq=False)
class Attempt:
    """One try of the turn in progress on one member."""

    member: Member
    tries: int  # 1: the first try on this member for this turn
    started: float = field(default_factory=time.monotonic)
    first_at: float | None = None  # first byte of the answer
    last_at: float | None = None  # latest byte
    live: bool = True
    late: bool = False  # missed its first-byte deadline; a fallback races it

    def progress(self) -> bool:
        """Note a byte of the answer; True when it is the first."""
        now = time.monotonic()
        first = self.first_at is None
        if first:
            self.first_at = now
        self.last_at = now
        return first


class _Strategy(ServiceSwitcherStrategy):
    """Which member is active is decided by FailoverService, not by Pipecat's errors."""

    async def handle_error(self, error: ErrorFrame) -> FrameProcessor | None:
        return None


class _Gate(FrameProcessor):
    """Before a member: admits frames for the active member; sees what it sends upstream."""

    def __init__(self, owner: FailoverService, member: Member):
        super().__init__(name=f"{owner.stage}-gate-{member}", enable_direct_mode=True)
        self._owner, self._member = owner, member

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        owner, member = self._owner, self._member
        if isinstance(frame, LIFECYCLE):
            await self.push_frame(frame, direction)
        elif direction == DOWN:
            if owner.active is member and await owner.admit(member, frame, DOWN):
                await self.push_frame(frame, direction)
        elif await owner.upstream_out(member, frame):
            await self.push_frame(frame, direction)


class _Tap(FrameProcessor):
    """After a member: lets out what the member serving the turn produced; admits
    upstream frames (VAD events, context frames after a tool call) for the active one."""

    def __init__(self, owner: FailoverService, member: Member):
        super().__init__(name=f"{owner.stage}-tap-{member}", enable_direct_mode=True)
        self._owner, self._member = owner, member

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        owner, member = self._owner, self._member
        if isinstance(frame, LIFECYCLE):
            await self.push_frame(frame, direction)
        elif direction == UP:
            if owner.active is member and await owner.admit(member, frame, UP):
                await self.push_frame(frame, direction)
        elif frame.id in owner._injected:
            owner._injected.discard(frame.id)
        elif isinstance(frame, ServiceMetadataFrame) or await owner.out(member, frame):
            await self.push_frame(frame, direction)


class FailoverService(ServiceSwitcher):
    """A chain of providers for one stage. Subclasses say what a turn is (``admit``,
    ``out``) and how to redo it (``redo``)."""

    stage = "service"
    races = False  # on a late first byte, start the next member and take whichever answers

    def __init__(self, members: list[Member]):
        if not members:
            raise ValueError("a failover chain needs at least one provider")
        self.members = members
        self._injected: set[int] = set()
        self._attempts: list[Attempt] = []
        self._turn = 0  # bumped when a turn ends or is interrupted: stale actions stop
        self._tasks: set[asyncio.Task[Any]] = set()
        self._probes: dict[int, asyncio.Task[Any]] = {}
        self._wake = asyncio.Event()
        self._watchdog: asyncio.Task[Any] | None = None
        self.failovers = 0
        self._closed = False
        super().__init__([m.service for m in members], _Strategy)

    async def setup(self, setup: Any) -> None:
        await super().setup(setup)
        for m in self.members:
            if m.key is not None:
                board().watch(m.key, self)
        # A call that starts while its primary is down (another call found out) starts
        # on the first healthy member; before StartFrame, nothing has been routed yet.
        first = next((m for m in self.members if m.healthy), None)
        if first is not None and first is not self.active:
            log.info("%s starts on %s: %s is down in this worker", self.stage, first, self.members[0])
            self.strategy._active_service = first.service  # Pipecat has no public setter

    def provider_healed(self, key: Key) -> None:
        """The worker's probe found ``key`` healthy again (health.py calls this)."""
        if self._closed:
            return
        for m in self.members:
            if m.key == key:
                self._spawn(self._rejoin(m))

    async def _rejoin(self, member: Member) -> None:
        if member.failed_here:
            try:
                await recover(member.service)
            except Exception as e:  # noqa: BLE001 - it stays out of this call
                log.info("%s %s did not reconnect: %s", self.stage, member, translate(e).reason)
                return
            member.failed_here = False
        self._take_back()

    # -- layout ------------------------------------------------------------------------
    def _make_pipeline_definitions(self, services: list[FrameProcessor], strategy: Any) -> list[Any]:
        return [[_Gate(self, m), m.service, _Tap(self, m)] for m in self.members]

    @property
    def active(self) -> Member:
        service = self.strategy.active_service
        return next(m for m in self.members if m.service is service)

    def member_of(self, service: Any) -> Member | None:
        return next((m for m in self.members if m.service is service), None)

    # -- what subclasses decide --------------------------------------------------------
    async def admit(self, member: Member, frame: Frame, direction: FrameDirection) -> bool:
        """A frame for the active member (seen before it gets it); False keeps it out."""
        return True

    async def out(self, member: Member, frame: Frame) -> bool:
        """A frame ``member`` pushed downstream; True lets it out of the chain."""
        return member is self.active

    async def redo(self, attempt: Attempt) -> None:
        """Send the turn in progress to ``attempt.member`` (a retry or the next member)."""

    def deadline(self, attempt: Attempt) -> tuple[float, type[ProviderTimeout]] | None:
        """When ``attempt`` is late (monotonic time) and as what, or None (nothing owed)."""
        retry = attempt.member.retry
        if attempt.first_at is None:
            return attempt.started + retry.attempt_timeout_secs, ProviderTimeout
        return None

    async def give_up(self, error: ProviderError) -> None:
        """No member is left for the turn in progress."""

    def on_turn_over(self) -> None:
        """The turn ended or was interrupted (clear per-turn state)."""

    async def moved(self, member: Member) -> None:
        """``member`` took over between turns (bring it up to date)."""

    # -- attempts ----------------------------------------------------------------------
    def live(self, member: Member | None = None) -> list[Attempt]:
        return [a for a in self._attempts if a.live and (member is None or a.member is member)]

    def serving(self, member: Member) -> Attempt | None:
        return next(iter(self.live(member)), None)

    def begin(self, member: Member, tries: int = 1) -> Attempt:
        attempt = Attempt(member, tries)
        self._attempts = [*self.live(), attempt]
        self._arm()
        return attempt

    def finish(self) -> None:
        """The turn in progress is complete."""
        for attempt in self._attempts:
            attempt.live = False
        self._attempts = []
        self._turn += 1
        self.on_turn_over()
        self._take_back()

    async def interrupted(self) -> None:
        """The caller cut in: every attempt stops; members racing in the background too."""
        for attempt in self.live():
            if attempt.member is not self.active:
                await self.interrupt(attempt.member)
        self.finish()

    def next_member(self, after: Member | None = None) -> Member | None:
        """The first healthy member in chain order that is not busy with this turn."""
        busy = {a.member.index for a in self.live()}
        if after is not None:
            busy.add(after.index)
        return next((m for m in self.members if m.healthy and m.index not in busy), None)

    def has_next(self, attempt: Attempt) -> bool:
        return self.next_member(attempt.member) is not None

    async def first_byte(self, attempt: Attempt) -> None:
        """``attempt`` answered first: the others racing it stop; a fallback that wins
        takes over from the late members."""
        for other in self.live():
            if other is attempt:
                continue
            other.live = False
            await self.interrupt(other.member)
            if other.late:
                self._mark_failed(other.member)
                await self.announce(other.member, attempt.member, "timeout")
        if attempt.member is not self.active:
            await self.activate(attempt.member)

    async def failed(self, attempt: Attempt, error: ProviderError) -> bool:
        """``attempt`` failed; decide what happens next. False: nothing is left (the
        error should travel on)."""
        if not attempt.live:
            return True
        member, turn = attempt.member, self._turn
        nxt = self.next_member(member)
        kind = error.kind
        log.warning("%s %s failed (%s, try %d): %s", self.stage, member, error.reason, attempt.tries, error)
        if kind == "timeout" and self.races and nxt is not None and not attempt.late:
            attempt.late = True
            self._spawn(self._start(Attempt(nxt, 1), turn))
            return True
        attempt.live = False
        if kind in ("timeout", "stall") and nxt is not None:
            self._spawn(self._switch(attempt, nxt, error, turn))
        elif error.retryable and attempt.tries < member.retry.attempts:
            delay = member.retry.backoff_secs * 2 ** (attempt.tries - 1)
            self._spawn(self._retry(attempt, delay, turn))
        elif nxt is not None:
            self._spawn(self._switch(attempt, nxt, error, turn))
        elif self.live():
            return True  # someone else is still answering this turn
        else:
            self._spawn(self._give_up(attempt, error, turn))
            return False
        return True

    async def _start(self, attempt: Attempt, turn: int) -> None:
        if turn != self._turn:
            return
        self._attempts = [*self.live(), attempt]
        self._arm()
        await self.redo(attempt)

    async def _retry(self, attempt: Attempt, delay: float, turn: int) -> None:
        await self.interrupt(attempt.member)
        await asyncio.sleep(delay)
        if turn == self._turn:
            await self._start(Attempt(attempt.member, attempt.tries + 1), turn)

    async def _switch(self, attempt: Attempt, nxt: Member, error: ProviderError, turn: int) -> None:
        if turn != self._turn:
            return
        self._mark_failed(attempt.member)
        await self.interrupt(attempt.member)
        if not any(a.member is self.active for a in self.live()):
            await self.activate(nxt)
        await self.announce(attempt.member, nxt, error.reason)
        await self._start(Attempt(nxt, 1), turn)

    async def _give_up(self, attempt: Attempt, error: ProviderError, turn: int) -> None:
        if turn != self._turn:
            return
        self._mark_failed(attempt.member)
        log.error("%s: no provider left for this turn: %s", self.stage, error)
        await self.push_frame(FailoverFrame(stage=self.stage, from_provider=attempt.member.provider,
                                            reason=error.reason, failed_service=attempt.member.service))
        await self.give_up(error)
        self.finish()

    # -- errors --------------------------------------------------------------------------
    async def upstream_out(self, member: Member, frame: Frame) -> bool:
        """A frame ``member`` pushed upstream: errors are judged here."""
        if frame.id in self._injected:
            self._injected.discard(frame.id)
            return False
        if not isinstance(frame, ErrorFrame) or frame.fatal or frame.processor is not member.service:
            return member is self.active or self.serving(member) is not None
        error = translate(frame.exception, frame.error, provider=member.provider)
        attempt = self.serving(member)
        if attempt is not None:
            if await self.failed(attempt, error):
                return False
            frame.exception = frame.exception or error
            return True
        if member is not self.active:
            return False  # a member in reserve: its errors are its own (it is probed)
        nxt = self.next_member(member)
        if nxt is None:
            return True
        # Between turns (a dropped websocket, say): move on before the next turn needs it.
        log.warning("%s %s failed between turns (%s): %s", self.stage, member, error.reason, error)
        self._mark_failed(member)
        await self.activate(nxt)
        await self.announce(member, nxt, error.reason, during_turn=False)
        await self.moved(nxt)
        return False

    # -- members -------------------------------------------------------------------------
    async def activate(self, member: Member) -> None:
        if not member.service.is_usable:
            await member.service.set_usable(True)
        await self.strategy._set_active_if_available(member.service)

    async def interrupt(self, member: Member) -> None:
        """Stop what ``member`` is doing; its InterruptionFrame goes no further."""
        frame = InterruptionFrame()
        self._injected.add(frame.id)
        await member.service.queue_frame(frame, DOWN)

    async def inject(self, member: Member, frame: Frame, direction: FrameDirection = DOWN,
                     *, echo: bool = False) -> None:
        """Hand ``member`` a frame of our own; ``echo=False`` stops it coming back out."""
        if not echo:
            self._injected.add(frame.id)
        await member.service.queue_frame(frame, direction)

    async def announce(self, failed: Member, to: Member | None, reason: str, *, during_turn: bool = True) -> None:
        self.failovers += 1
        log.warning("%s failover %s -> %s (%s)", self.stage, failed, to, reason)
        await self.push_frame(FailoverFrame(
            stage=self.stage, from_provider=failed.provider, to_provider=to.provider if to else None,
            reason=reason, failed_service=failed.service, during_turn=during_turn))

    def _mark_failed(self, member: Member) -> None:
        member.failures += 1
        if member.failed_here:
            return
        member.failed_here = True
        if member.key is not None and member.probe is not None:
            board().failed(member.key, member.probe, member.retry)  # one probe per worker
            return
        if member.index not in self._probes:
            task = self.create_task(self._probe_until_healthy(member), f"probe-{member}")
            self._probes[member.index] = task
            task.add_done_callback(lambda _t, i=member.index: self._probes.pop(i, None))

    async def _probe_until_healthy(self, member: Member) -> None:
        """A member without a probe of its own: a fresh start of its service is the probe."""
        retry = member.retry
        interval = retry.probe_interval_secs
        for n in range(retry.max_probes):
            await asyncio.sleep(interval)
            try:
                await recover(member.service)
            except Exception as e:  # noqa: BLE001 - any failure means: not yet
                log.info("%s %s probe %d failed: %s", self.stage, member, n + 1, translate(e).reason)
                interval = min(interval * 2, retry.probe_max_interval_secs)
                continue
            log.info("%s %s is healthy again", self.stage, member)
            member.failed_here = False
            self._take_back()
            return
        log.warning("%s %s stays out for this call after %d probes", self.stage, member, retry.max_probes)

    def _take_back(self) -> None:
        """Between turns, the first healthy member in chain order becomes active again."""
        if self.live():
            return
        first = next((m for m in self.members if m.healthy), None)
        if first is not None and first is not self.active and self.may_take_back():
            self._spawn(self.activate(first))

    def may_take_back(self) -> bool:
        return True

    # -- timers ----------------------------------------------------------------------------
    def _arm(self) -> None:
        if self._watchdog is None:
            self._watchdog = self.create_task(self._watch(), "failover-watchdog")
        self._wake.set()

    def poke(self) -> None:
        """Deadlines changed (a request arrived, a byte came): re-check them."""
        if self._watchdog is not None:
            self._wake.set()

    async def _watch(self) -> None:
        while True:
            now = time.monotonic()
            due: list[tuple[Attempt, type[ProviderTimeout]]] = []
            soonest: float | None = None
            for attempt in self.live():
                if not self.has_next(attempt) or attempt.late:
                    continue  # the last member is waited for; a late one is being raced
                limit = self.deadline(attempt)
                if limit is None:
                    continue
                when, kind = limit
                if when <= now:
                    due.append((attempt, kind))
                else:
                    soonest = when if soonest is None else min(soonest, when)
            for attempt, kind in due:
                error_cls = ProviderStalled if kind is ProviderStalled else ProviderTimeout
                what = "stalled mid-answer" if error_cls is ProviderStalled else "no first byte in time"
                await self.failed(attempt, error_cls(what, provider=attempt.member.provider))
            if due:
                continue
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), None if soonest is None else soonest - now)

    def _spawn(self, coro: Awaitable[Any]) -> None:
        task = self.create_task(coro, f"{self.stage}-failover")  # type: ignore[arg-type]
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def cleanup(self) -> None:
        self._closed = True
        for task in [*self._tasks, *self._probes.values(), *([self._watchdog] if self._watchdog else [])]:
            await self.cancel_task(task)
        self._watchdog = None
        await super().cleanup()


async def recover(service: Any) -> None:
    """Make a member that failed ready for work again: usable, and a fresh connection
    for websocket services (the old one may be stalled)."""
    disconnect, connect = getattr(service, "_disconnect", None), getattr(service, "_connect", None)
    if not service.is_usable:
        await service.set_usable(True)
    if callable(disconnect) and callable(connect) and getattr(service, "_task_manager", None):
        with contextlib.suppress(TimeoutError):  # a stalled peer may never finish closing
            await asyncio.wait_for(disconnect(), RECONNECT_SECS)
        await asyncio.wait_for(connect(), RECONNECT_SECS)

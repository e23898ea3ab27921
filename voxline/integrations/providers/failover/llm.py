"""LLM failover: the turn's context is answered by the first member that can.

- Nothing reached the caller yet (an error, no first byte): the next member runs the
  *same* context. A late first byte is raced: the next member starts, the primary keeps
  going, and whichever answers first is heard (the other is stopped).
- The answer stopped mid-way (a stall, a dropped stream): what was already let out
  stays said; the next member is asked to continue from exactly there, and anything it
  repeats of what was said is dropped before it reaches the TTS. The TTS holds an
  unfinished sentence until it ends, so the caller hears each sentence once, whole.

One response frame pair reaches the rest of the pipeline per turn: the first member's
``LLMFullResponseStartFrame`` and the serving member's ``LLMFullResponseEndFrame``.
"""

from __future__ import annotations

import asyncio
import re
from collections import deque
from typing import Any

from pipecat.frames.frames import (
    Frame,
    FunctionCallInProgressFrame,
    FunctionCallsStartedFrame,
    InterruptionFrame,
    LLMContextFrame,
    LLMFullResponseEndFrame,
    LLMFullResponseStartFrame,
    LLMTextFrame,
    LLMThoughtEndFrame,
    LLMThoughtStartFrame,
    LLMThoughtTextFrame,
    MetricsFrame,
)
from pipecat.metrics.metrics import TTFBMetricsData
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.processors.frame_processor import FrameDirection

from voxline.errors import ProviderError, ProviderStalled, ProviderTimeout
from voxline.integrations.providers.failover.core import Attempt, FailoverService, Member, log

ANSWER = (LLMTextFrame, LLMThoughtStartFrame, LLMThoughtTextFrame, LLMThoughtEndFrame,
          FunctionCallsStartedFrame, FunctionCallInProgressFrame)
CONTINUE = ("(Your reply above was cut off there. Continue it from exactly where it stops, "
            "without repeating any of it.)")


def continuation(context: LLMContext, said: str) -> LLMContext:
    """``context`` plus what the caller already heard of the answer, and a request to go on."""
    messages = [*context.get_messages(), {"role": "assistant", "content": said},
                {"role": "user", "content": CONTINUE}]
    return LLMContext(messages=messages, tools=context.tools, tool_choice=context.tool_choice)


_WORD = re.compile(r"[\w']+")


def _words(text: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(text)]


class Repeat:
    """Drops what a continuing member repeats of the answer already said: the whole of
    it, or the unfinished sentence. Holds its first words only while they match."""

    MAX_HELD = 600  # characters

    def __init__(self, said: str):
        words = _words(said)
        cut = max((m.end() for m in re.finditer(r"[.!?](\s|$)", said)), default=0)
        tail = _words(said[cut:])
        self.targets = [t for t in (words, tail) if t]
        self.held = ""
        self.done = not self.targets
        self.joiner = "" if not said or said[-1].isspace() else " "

    def feed(self, text: str) -> str:
        """The part of ``text`` to let out now."""
        if self.done:
            return text
        self.held += text
        words = _words(self.held)
        partial = words.pop() if words and self.held[-1:].isalnum() else None  # may grow yet
        for target in self.targets:
            if words[:len(target)] == target:
                return self._release(len(target))

        def consistent(target: list[str]) -> bool:
            if target[:len(words)] != words:
                return False
            return partial is None or (len(target) > len(words) and target[len(words)].startswith(partial))

        if not any(consistent(t) for t in self.targets) or len(self.held) > self.MAX_HELD:
            return self._release(0)
        return ""

    def flush(self) -> str:
        if self.done:
            return ""
        if any(_words(self.held) == target for target in self.targets):
            self.done, self.held = True, ""
            return ""
        return self._release(0)

    def _release(self, skip_words: int) -> str:
        text, self.held, self.done = self.held, "", True
        if skip_words:
            ends = [m.end() for m in _WORD.finditer(text)]
            text = text[ends[skip_words - 1]:].lstrip(" ,")
        if text and not text[0].isspace() and text[0] not in ".,!?;:":
            text = self.joiner + text
        return text


class LLMFailover(FailoverService):
    stage = "llm"
    races = True

    def __init__(self, members: list[Member]):
        super().__init__(members)
        self._context: LLMContext | None = None
        self._queued: deque[LLMContext] = deque()
        self._said = ""
        self._start_out = False
        self._repeat: Repeat | None = None

    # -- the LLM service's own API, for every member ------------------------------------
    def register_function(self, name: str | None, handler: Any, *args: Any, **kwargs: Any) -> None:
        for m in self.members:
            m.service.register_function(name, handler, *args, **kwargs)

    def unregister_function(self, name: str | None) -> None:
        for m in self.members:
            m.service.unregister_function(name)

    def has_function(self, name: str) -> bool:
        return self.members[0].service.has_function(name)

    async def warm_up(self, context: LLMContext, **kwargs: Any) -> bool:
        """Warm every member that can be; whether all of those are ready."""
        ready = True
        for m in self.members:
            warm = getattr(m.service, "warm_up", None)
            if warm is not None:
                ready = bool(await warm(context, **kwargs)) and ready
        return ready

    async def run_inference(self, context: LLMContext, **kwargs: Any) -> str | None:
        """One out-of-pipeline answer (call summaries), from the first member that gives one."""
        order = [m for m in self.members if m.healthy] or self.members
        for i, m in enumerate(order):
            last = i == len(order) - 1
            try:
                call = m.service.run_inference(context, **kwargs)
                return await (call if last else asyncio.wait_for(call, 30.0))
            except Exception as e:  # noqa: BLE001 - the next member may answer
                if last:
                    raise
                log.warning("llm %s run_inference failed, trying the next: %s", m, type(e).__name__)
        return None

    # -- turns -------------------------------------------------------------------------
    async def admit(self, member: Member, frame: Frame, direction: FrameDirection) -> bool:
        if isinstance(frame, InterruptionFrame):
            await self.interrupted()
        elif isinstance(frame, LLMContextFrame):
            if self.live():
                self._queued.append(frame.context)
            else:
                self._begin_turn(member, frame.context)
        return True

    def _begin_turn(self, member: Member, context: LLMContext) -> None:
        self._context, self._said, self._start_out, self._repeat = context, "", False, None
        self.begin(member)

    def on_turn_over(self) -> None:
        self._context, self._said, self._repeat = None, "", None
        self._start_out = False
        if self._queued:
            self._begin_turn(self.active, self._queued.popleft())

    def deadline(self, attempt: Attempt) -> tuple[float, type[ProviderTimeout]] | None:
        retry = attempt.member.retry
        if attempt.first_at is None:
            return attempt.started + retry.attempt_timeout_secs, ProviderTimeout
        assert attempt.last_at is not None
        return attempt.last_at + retry.stall_timeout_secs, ProviderStalled

    async def redo(self, attempt: Attempt) -> None:
        context = self._context
        if context is None:
            return
        if self._said.strip():
            context = continuation(context, self._said)
            self._repeat = Repeat(self._said)
        await self.inject(attempt.member, LLMContextFrame(context=context), echo=True)

    async def out(self, member: Member, frame: Frame) -> bool:
        attempt = self.serving(member)
        if attempt is None:
            # Not answering this turn: a late or stopped member's leftovers (its answer,
            # the end of an answer it gave up) stay inside; other frames pass through
            # the active member as through a bare service.
            return member is self.active and not isinstance(
                frame, (*ANSWER, LLMFullResponseStartFrame, LLMFullResponseEndFrame))
        if isinstance(frame, LLMFullResponseStartFrame):
            if self._start_out:
                return False
            self._start_out = True
            return True
        if isinstance(frame, MetricsFrame):
            if any(isinstance(d, TTFBMetricsData) for d in frame.data) and attempt.first_at is None:
                await self._answered(attempt)
            return True
        if isinstance(frame, ANSWER):
            if attempt.first_at is None or attempt.late:
                await self._answered(attempt)
            else:
                attempt.progress()
                self.poke()
            if isinstance(frame, LLMTextFrame):
                return await self._text(frame)
            await self._release_held()
            return True
        if isinstance(frame, LLMFullResponseEndFrame):
            if attempt.first_at is None and len(self.live()) > 1:
                return False  # it ended without answering while another still races
            await self._release_held()
            self.finish()
            return True
        return True

    async def _answered(self, attempt: Attempt) -> None:
        attempt.progress()
        attempt.late = False
        await self.first_byte(attempt)
        self.poke()

    async def _text(self, frame: LLMTextFrame) -> bool:
        text = frame.text if self._repeat is None else self._repeat.feed(frame.text)
        if not text:
            return False
        if text != frame.text:
            await self.push_frame(LLMTextFrame(text))
            self._said += text
            return False
        self._said += text
        return True

    async def _release_held(self) -> None:
        if self._repeat is not None:
            text = self._repeat.flush()
            if text:
                self._said += text
                await self.push_frame(LLMTextFrame(text))

    async def give_up(self, error: ProviderError) -> None:
        # AnswerGuard says the agent's fallback sentence after an answer with no text.
        if not self._start_out:
            await self.push_frame(LLMFullResponseStartFrame())
        await self._release_held()
        await self.push_frame(LLMFullResponseEndFrame())

"""What a realtime (speech-to-speech) call needs that the cascade gets from its TTS.

Pipecat's realtime services set the conversation up from the first context they are
given, and answer it: so the call opens with one inference, in which the model greets
the caller (with the agent's ``greeting`` when it has one). Without it, the caller's
first turn would be answered twice: once on their audio, once on the late first context.

A realtime model has no TTS to hand a ``TTSSpeakFrame`` to, so what the call itself
says (an idle reprompt, the goodbye before hanging up, a time-limit notice) would go
unsaid: :class:`RealtimeSpeech` turns it into an instruction the model speaks, and holds
the call's end until it has been played.
"""

from __future__ import annotations

import asyncio
import contextlib

from pipecat.frames.frames import (
    BotStartedSpeakingFrame,
    BotStoppedSpeakingFrame,
    EndFrame,
    Frame,
    LLMMessagesAppendFrame,
    LLMRunFrame,
    StartFrame,
    TTSSpeakFrame,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor


def opening_instruction(greeting: str | None) -> str:
    if greeting:
        return f'Open the call by saying: "{greeting}"'
    return "Open the call with a short greeting."


class RealtimeOpening(FrameProcessor):
    """Before the user aggregator: once the pipeline starts, asks it to run the model."""

    def __init__(self) -> None:
        super().__init__()
        self._opened = False

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        await self.push_frame(frame, direction)
        if isinstance(frame, StartFrame) and not self._opened:
            self._opened = True
            await self.push_frame(LLMRunFrame())


def say_instruction(text: str) -> str:
    return f'Say exactly this to the caller, and nothing else: "{text}"'


class RealtimeSpeech(FrameProcessor):
    """Between the user aggregator and the model: ``TTSSpeakFrame`` → the model says it;
    an ``EndFrame`` that follows waits until that has been played (at most
    ``grace_secs``). The instruction must pass the model before an aggregator takes it:
    the assistant aggregator then asks for the answer when the caller is not speaking
    (the user aggregator would hand the model a context it does not answer)."""

    def __init__(self, grace_secs: float = 10.0) -> None:
        super().__init__()
        self._grace = grace_secs
        self._owed = 0  # spoken lines asked for and not yet played out
        self._speaking = False
        self._skip_stop = False  # asked mid-answer: that answer's end is not ours
        self._played = asyncio.Event()
        self._ending: asyncio.Task[None] | None = None

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, TTSSpeakFrame) and direction == FrameDirection.DOWNSTREAM:
            self._owed += 1
            self._skip_stop = self._skip_stop or self._speaking
            self._played.clear()
            message = {"role": "system", "content": say_instruction(frame.text)}
            await self.push_frame(LLMMessagesAppendFrame([message], run_llm=True))
            return
        if isinstance(frame, EndFrame) and self._owed and self._ending is None:
            self._ending = self.create_task(self._end_after_played(frame), "realtime-end")
            return
        if isinstance(frame, BotStartedSpeakingFrame):
            self._speaking = True
        elif isinstance(frame, BotStoppedSpeakingFrame) and self._speaking:
            self._speaking = False
            if self._skip_stop:
                self._skip_stop = False
            elif self._owed:
                self._owed -= 1
                if not self._owed:
                    self._played.set()
        await self.push_frame(frame, direction)

    async def _end_after_played(self, frame: EndFrame) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._played.wait(), self._grace)
        await self.push_frame(frame)

    async def cleanup(self) -> None:
        if self._ending is not None:
            await self.cancel_task(self._ending)
        await super().cleanup()

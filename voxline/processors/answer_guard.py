"""Guarantees the caller an answer: an LLM turn that produced neither speech nor a tool
call is followed by a fallback sentence.

That happens when a provider fails mid-stream, returns an empty message, or sends a
tool call whose arguments are not JSON (Pipecat drops such a call). Without this the
caller would wait in silence for an answer that never comes.
"""

from __future__ import annotations

from pipecat.frames.frames import (
    Frame,
    FunctionCallsStartedFrame,
    InterruptionFrame,
    LLMFullResponseEndFrame,
    LLMFullResponseStartFrame,
    LLMTextFrame,
    TTSSpeakFrame,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor


class AnswerGuard(FrameProcessor):
    def __init__(self, fallback: str, **kwargs: object):
        super().__init__(**kwargs)
        self._fallback = fallback
        self._in_response = False
        self._answered = False
        self.fallbacks_spoken = 0

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        await self.push_frame(frame, direction)
        if isinstance(frame, LLMFullResponseStartFrame):
            self._in_response, self._answered = True, False
        elif isinstance(frame, LLMTextFrame) and frame.text.strip():
            self._answered = True
        elif isinstance(frame, FunctionCallsStartedFrame | InterruptionFrame):
            self._answered = True  # a tool speaks for itself; an interruption wants silence
        elif isinstance(frame, LLMFullResponseEndFrame) and self._in_response:
            self._in_response = False
            if not self._answered:
                self.fallbacks_spoken += 1
                await self.push_frame(TTSSpeakFrame(self._fallback))

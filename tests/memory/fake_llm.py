"""An LLM on Pipecat's real LLMService base class that answers from its context.

It reads the system message the session built (prompt + injected memory), so a test
can see whether the agent "knows" the caller: it greets a remembered name.
"""

from __future__ import annotations

import re

from pipecat.frames.frames import (
    Frame,
    LLMContextFrame,
    LLMFullResponseEndFrame,
    LLMFullResponseStartFrame,
    LLMTextFrame,
)
from pipecat.processors.frame_processor import FrameDirection
from pipecat.services.llm_service import LLMService

_NAME = re.compile(r"caller's name is ([A-Z][a-z]+)")


class RememberingLLM(LLMService):
    def __init__(self) -> None:
        super().__init__()
        self.systems: list[str] = []

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if not isinstance(frame, LLMContextFrame):
            await self.push_frame(frame, direction)
            return
        messages = frame.context.get_messages()
        system = next((str(m.get("content")) for m in messages if m.get("role") == "system"), "")
        self.systems.append(system)
        known = _NAME.search(system)
        reply = f"Welcome back, {known.group(1)}!" if known else "Nice to meet you."
        await self.push_frame(LLMFullResponseStartFrame())
        await self.push_frame(LLMTextFrame(reply))
        await self.push_frame(LLMFullResponseEndFrame())

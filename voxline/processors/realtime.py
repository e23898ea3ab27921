"""The opening of a realtime (speech-to-speech) call.

Pipecat's realtime services set the conversation up from the first context they are
given, and answer it: so the call opens with one inference, in which the model greets
the caller (with the agent's ``greeting`` when it has one). Without it, the caller's
first turn would be answered twice: once on their audio, once on the late first context.
"""

from __future__ import annotations

from pipecat.frames.frames import Frame, LLMRunFrame, StartFrame
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

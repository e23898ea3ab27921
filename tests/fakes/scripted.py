"""A scripted speech recognizer on Pipecat's real segmented-STT base class.

The caller's audio still goes through the real VAD and turn detection; only the words
are scripted, so tests of what happens *after* recognition are exact and fast.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator

from pipecat.frames.frames import Frame, TranscriptionFrame
from pipecat.services.stt_service import SegmentedSTTService
from pipecat.utils.time import time_now_iso8601


class ScriptedSTT(SegmentedSTTService):
    """Returns the next scripted transcript for each speech segment."""

    def __init__(self, transcripts: list[str], sample_rate: int = 16000) -> None:
        super().__init__(sample_rate=sample_rate)
        self.script = list(transcripts)

    async def run_stt(self, audio: bytes) -> AsyncGenerator[Frame | None, None]:
        text = self.script.pop(0) if self.script else "..."
        yield TranscriptionFrame(text, "caller", time_now_iso8601())

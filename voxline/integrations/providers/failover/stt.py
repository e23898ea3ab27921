"""STT failover: the utterance's audio is heard again by the next member.

Every input audio frame passes the chain's gate, which keeps the last
``RING_SECS`` of it. When the caller starts speaking (the VAD's event, which comes back
upstream from the user aggregator) the utterance begins ``PRE_ROLL_SECS`` before; when
they stop, the active member owes a transcript (or, for an empty result, its TTFB or
processing metrics) within ``attempt_timeout_secs``. A late one is raced: the next
member is given the utterance (VAD start, its audio, VAD stop) and whichever
transcribes first is heard. A member that fails mid-utterance hands over at once: the
next one gets the audio so far, and the live audio follows.
"""

from __future__ import annotations

from collections import deque
from dataclasses import replace

from pipecat.frames.frames import (
    Frame,
    InputAudioRawFrame,
    InterimTranscriptionFrame,
    MetricsFrame,
    TranscriptionFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.metrics.metrics import ProcessingMetricsData, TTFBMetricsData
from pipecat.processors.frame_processor import FrameDirection

from voxline.errors import ProviderTimeout
from voxline.integrations.providers.failover.core import DOWN, UP, Attempt, FailoverService, Member

RING_SECS = 30.0
PRE_ROLL_SECS = 1.0  # as Pipecat's segmented STT keeps before the VAD's start


class STTFailover(FailoverService):
    stage = "stt"
    races = True

    def __init__(self, members: list[Member]):
        super().__init__(members)
        self._ring: deque[InputAudioRawFrame] = deque()
        self._ring_bytes = 0
        self._utterance: list[InputAudioRawFrame] | None = None
        self._stop: VADUserStoppedSpeakingFrame | None = None

    def set_vocabulary(self, vocabulary: str) -> None:
        """Recognizer hints for every member that takes them."""
        for m in self.members:
            setter = getattr(m.service, "set_vocabulary", None)
            if callable(setter):
                setter(vocabulary)

    # -- what comes in -------------------------------------------------------------------
    async def admit(self, member: Member, frame: Frame, direction: FrameDirection) -> bool:
        if isinstance(frame, InputAudioRawFrame):
            self._keep(frame)
        elif isinstance(frame, VADUserStartedSpeakingFrame):
            self._started()
        elif isinstance(frame, VADUserStoppedSpeakingFrame):
            if self._utterance is not None and self._stop is None:
                self._stop = frame
                self.begin(member)
        return True

    def _keep(self, frame: InputAudioRawFrame) -> None:
        self._ring.append(frame)
        self._ring_bytes += len(frame.audio)
        limit = int(RING_SECS * frame.sample_rate * 2 * frame.num_channels)
        while self._ring_bytes > limit and len(self._ring) > 1:
            self._ring_bytes -= len(self._ring.popleft().audio)
        if self._utterance is not None and self._stop is None:
            self._utterance.append(frame)

    def _started(self) -> None:
        if self.live():
            self.finish()  # a new utterance: the last one's result no longer matters
        keep, kept = [], 0.0
        for f in reversed(self._ring):
            if kept >= PRE_ROLL_SECS:
                break
            keep.append(f)
            kept += len(f.audio) / (2 * f.sample_rate * f.num_channels)
        self._utterance, self._stop = list(reversed(keep)), None

    def on_turn_over(self) -> None:
        if self._stop is not None:
            self._utterance, self._stop = None, None

    def may_take_back(self) -> bool:
        return self._utterance is None

    # -- what goes out -------------------------------------------------------------------
    async def out(self, member: Member, frame: Frame) -> bool:
        attempt = self.serving(member)
        if isinstance(frame, TranscriptionFrame | InterimTranscriptionFrame):
            if attempt is None:
                return member is self.active and not self.live()
            if isinstance(frame, InterimTranscriptionFrame):
                if attempt.first_at is not None or len(self.live()) == 1:
                    attempt.progress()
                    return True
                return False
            await self._answered(attempt)
            self.finish()
            return True
        if isinstance(frame, MetricsFrame) and attempt is not None and self._stop is not None and any(
                isinstance(d, TTFBMetricsData | ProcessingMetricsData) for d in frame.data):
            await self._answered(attempt)  # an empty result: nothing to transcribe
            self.finish()
            return True
        return member is self.active or attempt is not None

    async def _answered(self, attempt: Attempt) -> None:
        attempt.progress()
        attempt.late = False
        await self.first_byte(attempt)

    def deadline(self, attempt: Attempt) -> tuple[float, type[ProviderTimeout]] | None:
        if self._stop is None:
            return None  # the caller is still speaking: nothing is owed yet
        return attempt.started + attempt.member.retry.attempt_timeout_secs, ProviderTimeout

    async def redo(self, attempt: Attempt) -> None:
        """The utterance to ``attempt.member``: VAD start, its audio, VAD stop."""
        if self._utterance is None or self._stop is None:
            self.finish()
            return
        await self._replay(attempt.member)
        await self.inject(attempt.member, replace(self._stop), UP)

    async def moved(self, member: Member) -> None:
        """Taking over mid-utterance: the audio so far; the live audio follows."""
        if self._utterance is not None and self._stop is None:
            await self._replay(member)

    async def _replay(self, member: Member) -> None:
        assert self._utterance is not None
        await self.inject(member, VADUserStartedSpeakingFrame(), UP)
        for f in self._utterance:
            await self.inject(member, InputAudioRawFrame(f.audio, f.sample_rate, f.num_channels), DOWN)

"""TTS failover: what was not spoken yet is spoken by the next member.

The gate records every piece of text the serving member is given (an LLM turn's text,
a ``TTSSpeakFrame``); the member confirms what it spoke with ``TTSTextFrame``s (word by
word for services with word timestamps, sentence by sentence after their audio for the
others) and asks its provider for each sentence (``on_tts_request``). The member owes
audio while a request has had none yet (``attempt_timeout_secs``) or while requested
words are unconfirmed and no audio comes (``stall_timeout_secs``).

On failure the next member gets the words not confirmed yet, less those the audio
already played covers (estimated from the speaking rate for services without word
timestamps), so at most the word that was cut off is heard again, and never half a
sentence. The rest of the turn's text then flows to it as to any active member.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from pipecat.frames.frames import (
    AggregatedTextFrame,
    Frame,
    InterimTranscriptionFrame,
    InterruptionFrame,
    LLMFullResponseEndFrame,
    LLMFullResponseStartFrame,
    LLMTextFrame,
    TextFrame,
    TranscriptionFrame,
    TTSAudioRawFrame,
    TTSSpeakFrame,
    TTSStartedFrame,
    TTSStoppedFrame,
    TTSTextFrame,
)
from pipecat.processors.frame_processor import FrameDirection

from voxline.errors import ProviderStalled, ProviderTimeout
from voxline.integrations.providers.failover.core import Attempt, FailoverService, Member

WORDS_PER_SEC = 2.5  # speaking rate assumed until the call's own is measured


@dataclass(eq=False)
class Utterance:
    """One thing to say: an LLM turn's text or a TTSSpeakFrame."""

    kind: str  # "llm" | "speak"
    given: str = ""
    ended: bool = False  # all of its text has arrived
    speak: TTSSpeakFrame | None = None
    context_id: str | None = None
    requested: int = 0  # words the serving member asked its provider for
    confirmed: int = 0  # words it reported spoken
    audio_secs: float = 0.0  # audio since the last confirmation
    stopped: bool = False
    start_out: bool = False

    def remaining(self, words_per_sec: float, estimate: bool) -> str:
        words = self.given.split()
        skip = self.confirmed + (int(self.audio_secs * words_per_sec) if estimate else 0)
        return " ".join(words[min(skip, len(words)):])


def _words(text: str) -> int:
    return len(text.split())


class TTSFailover(FailoverService):
    stage = "tts"

    def __init__(self, members: list[Member]):
        super().__init__(members)
        self._utterances: list[Utterance] = []
        self._asked_at: float | None = None  # a request no audio has answered yet
        self._spoken_words = 0
        self._spoken_secs = 0.0
        for m in members:
            m.service.add_event_handler("on_tts_request", self._on_request)

    # -- what the pipeline configures on a TTS, for every member -------------------------
    def add_text_transformer(self, transform: Any, text_type: Any = "*") -> None:
        for m in self.members:
            add = getattr(m.service, "add_text_transformer", None)
            if callable(add):
                add(transform, text_type)

    @property
    def _text_transforms(self) -> list[Any]:
        return list(getattr(self.members[0].service, "_text_transforms", []))

    @staticmethod
    def _word_timestamps(member: Member) -> bool:
        return not getattr(member.service, "_push_text_frames", True)

    @property
    def _rate(self) -> float:
        if self._spoken_words >= 8 and self._spoken_secs > 0:
            return self._spoken_words / self._spoken_secs
        return WORDS_PER_SEC

    def _by_context(self, context_id: str | None) -> Utterance | None:
        return next((u for u in self._utterances if u.context_id == context_id), None)

    # -- what the member is given ----------------------------------------------------
    async def admit(self, member: Member, frame: Frame, direction: FrameDirection) -> bool:
        if direction != FrameDirection.DOWNSTREAM or getattr(frame, "skip_tts", False):
            return True
        if isinstance(frame, InterruptionFrame):
            self._utterances = [u for u in self._utterances if u.speak is not None
                                and not u.speak.interruptible]
            self._asked_at = None
            await self.interrupted()
        elif isinstance(frame, LLMFullResponseStartFrame):
            self._utterances.append(Utterance("llm"))
        elif isinstance(frame, LLMFullResponseEndFrame):
            current = self._current_llm()
            if current is not None:
                current.ended = True
        elif isinstance(frame, TTSSpeakFrame):
            self._utterances.append(Utterance("speak", given=frame.text, ended=True, speak=frame))
        elif isinstance(frame, TextFrame) and not isinstance(
                frame, TranscriptionFrame | InterimTranscriptionFrame | TTSTextFrame):
            current = self._current_llm() or self._append_llm()
            current.given += frame.text if isinstance(frame, LLMTextFrame) else f" {frame.text}"
        return True

    def _current_llm(self) -> Utterance | None:
        return next((u for u in reversed(self._utterances) if u.kind == "llm" and not u.ended), None)

    def _append_llm(self) -> Utterance:
        u = Utterance("llm")
        self._utterances.append(u)
        return u

    async def _on_request(self, service: Any, context_id: str, text: str) -> None:
        member = self.member_of(service)
        if member is None or (member is not self.active and self.serving(member) is None):
            return
        u = self._by_context(context_id)
        if u is None:
            free = [x for x in self._open() if x.context_id is None]
            u = next((x for x in free if x.speak is not None and x.speak.text.strip() == text.strip()),
                     next(iter(free), None))
            if u is None:
                return
            u.context_id = context_id
        u.requested += _words(text)
        if self._asked_at is None:
            self._asked_at = time.monotonic()
        if self.serving(member) is None:
            self.begin(member)
        self.poke()

    # -- what it says ------------------------------------------------------------------
    async def out(self, member: Member, frame: Frame) -> bool:
        attempt = self.serving(member)
        if attempt is None and (member is not self.active or self.live()):
            return False  # a member that stopped serving: its leftovers stay inside
        u = self._by_context(getattr(frame, "context_id", None))
        if isinstance(frame, TTSAudioRawFrame):
            self._asked_at = None
            if u is not None:
                u.audio_secs += len(frame.audio) / (2 * frame.sample_rate * frame.num_channels)
        elif isinstance(frame, TTSTextFrame) and u is not None:
            n = _words(frame.text)
            u.confirmed += n
            self._spoken_words += n
            self._spoken_secs += u.audio_secs
            u.audio_secs = 0.0
        elif isinstance(frame, LLMFullResponseStartFrame):
            owner = next((x for x in self._utterances if x.kind == "llm" and not x.start_out), None)
            if owner is None:
                return False  # the turn's start already went out from an earlier member
            owner.start_out = True
        elif isinstance(frame, LLMFullResponseEndFrame):
            done = next((x for x in self._utterances if x.kind == "llm" and x.ended), None)
            if done is not None:
                done.stopped = True
        elif isinstance(frame, TTSStoppedFrame) and u is not None and (u.ended or u.kind == "speak"):
            u.stopped = True
        if attempt is not None:
            if isinstance(frame, TTSAudioRawFrame | TTSTextFrame | TTSStartedFrame | AggregatedTextFrame):
                attempt.progress()
                self.poke()
            if not self._open():
                self.finish()
        self._utterances = self._open()
        return True

    def _open(self) -> list[Utterance]:
        return [u for u in self._utterances
                if not (u.ended and (u.stopped or (not u.given.strip() and not u.requested)))]

    def deadline(self, attempt: Attempt) -> tuple[float, type[ProviderTimeout]] | None:
        retry = attempt.member.retry
        if self._asked_at is not None:
            return self._asked_at + retry.attempt_timeout_secs, ProviderTimeout
        slack = 1 if self._word_timestamps(attempt.member) else 0
        owed = any(u.requested > u.confirmed + slack or (u.ended and u.requested and not u.stopped)
                   for u in self._open())
        if owed and attempt.last_at is not None:
            return attempt.last_at + retry.stall_timeout_secs, ProviderStalled
        return None

    def on_turn_over(self) -> None:
        self._asked_at = None

    def may_take_back(self) -> bool:
        return not self._open()

    # -- the next member says the rest ---------------------------------------------------
    async def redo(self, attempt: Attempt) -> None:
        member = attempt.member
        estimate = not self._word_timestamps(self._previous(member))
        self._asked_at = None
        pending = self._open()
        if not pending:
            self.finish()
            return
        for u in pending:
            rest = u.remaining(self._rate, estimate)
            u.context_id, u.requested, u.confirmed, u.audio_secs, u.stopped = None, 0, 0, 0.0, False
            u.given = rest
            if u.kind == "speak" and u.speak is not None:
                if rest:
                    await self.inject(member, TTSSpeakFrame(rest, append_to_context=u.speak.append_to_context),
                                      echo=True)
                else:
                    u.stopped = True
                continue
            await self.inject(member, LLMFullResponseStartFrame(), echo=True)
            if rest:
                await self.inject(member, LLMTextFrame(rest + (" " if not u.ended else "")), echo=True)
            if u.ended:
                await self.inject(member, LLMFullResponseEndFrame(), echo=True)
        self._utterances = self._open()
        if not self._utterances:
            self.finish()

    def _previous(self, member: Member) -> Member:
        """The member that was speaking before ``member`` took over."""
        failed = [m for m in self.members if m.failed_here and m is not member]
        return failed[-1] if failed else member

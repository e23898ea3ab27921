"""What happened in a call: turns, tool calls and per-turn latencies.

An observer sees every frame without sitting in the audio path, so recording costs
the pipeline nothing. Latencies are measured between frames of one turn:

- ``stt``: the VAD's end of speech → the final transcription;
- ``llm_ttft``: the context reaching the LLM → its first text or tool call;
- ``tts_ttfb``: the LLM's first spoken text → TTS's first audio (this includes waiting
  for the first clause to be complete);
- ``voice_to_voice`` (pipeline side): the VAD's end of speech → the first agent audio
  leaving the output transport. The simulated caller measures the same from the true
  end of its speech, which also counts the VAD's stop delay.

Usage (STT audio seconds, LLM tokens, TTS characters) comes from Pipecat's usage
metrics, per turn, with the provider and model that actually served it (see
:mod:`voxline.processors.usage`). A failover chain announces each switch with a
``FailoverFrame``: the turn lists it in ``failovers``, counts it in ``usage["failovers"]``
(so the call's usage sums them) and notes it under the stage in ``providers``
(``failed_over_from``), so the stored turn says who failed and who served it.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from pipecat.frames.frames import (
    BotStartedSpeakingFrame,
    BotStoppedSpeakingFrame,
    FunctionCallInProgressFrame,
    InputAudioRawFrame,
    InterruptionFrame,
    LLMContextFrame,
    LLMFullResponseEndFrame,
    LLMFullResponseStartFrame,
    LLMTextFrame,
    MetricsFrame,
    TranscriptionFrame,
    TTSAudioRawFrame,
    TTSSpeakFrame,
    TTSTextFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.metrics.metrics import LLMUsageMetricsData, STTUsageMetricsData, TTSUsageMetricsData
from pipecat.observers.base_observer import BaseObserver, FramePushed
from pipecat.services.llm_service import LLMService
from pipecat.services.stt_service import STTService
from pipecat.services.tts_service import TTSService
from pipecat.transports.base_input import BaseInputTransport
from pipecat.transports.base_output import BaseOutputTransport

from voxline.integrations.providers.failover.core import FailoverFrame
from voxline.processors.usage import add_usage


@dataclass
class ToolCallRecord:
    name: str
    arguments: dict[str, Any]
    result: Any = None
    error: str | None = None
    duration_ms: float = 0.0


@dataclass
class TurnRecord:
    """One exchange: what the caller said and what the agent answered."""

    index: int
    agent: str = ""  # the agent that answered (the last one, when a handoff happened in the turn)
    language: str = ""  # the language it answered in (its persona's: voxline.orchestration.languages)
    user_text: str = ""
    agent_text: str = ""
    interrupted: bool = False
    started_at: float = field(default_factory=time.time)
    ended_at: float | None = None
    tool_calls: list[ToolCallRecord] = field(default_factory=list)
    latency_ms: dict[str, float] = field(default_factory=dict)
    usage: dict[str, float] = field(default_factory=dict)  # see voxline.pricing for the keys
    providers: dict[str, dict[str, Any]] = field(default_factory=dict)  # stage -> provider, model
    failovers: list[dict[str, Any]] = field(default_factory=list)  # stage, from, to, reason


def _stages(frame: MetricsFrame) -> set[str]:
    """The stages a usage report is about."""
    kinds = {LLMUsageMetricsData: "llm", TTSUsageMetricsData: "tts", STTUsageMetricsData: "stt"}
    return {stage for d in frame.data for cls, stage in kinds.items() if isinstance(d, cls)}


class CallLog(BaseObserver):
    """Collects the call's turns. ``on_turn_closed`` lets stores write turn by turn."""

    def __init__(self, on_turn_closed: Callable[[TurnRecord], Awaitable[None]] | None = None,
                 agent: str = "", language: str = ""):
        super().__init__()
        self.agent = agent  # who answers now; a handoff changes it (voxline.orchestration)
        self.language = language  # and in which language
        self.turns: list[TurnRecord] = [TurnRecord(index=0, agent=agent, language=language)]  # turn 0: the greeting
        self.interruptions = 0  # barge-ins so far: a tool call started before one is stale
        self.guard: Any = None  # the call's ToolGuard (voxline.integrations.tools.guard)
        self.tools_running = 0  # tool calls in flight (guarded handlers count them)
        self._on_turn_closed = on_turn_closed
        self._marks: dict[str, float] = {}
        self._llm_answering: set[int] = set()  # LLM services with an answer started, not ended
        self.bot_speaking = False
        self.last_activity = time.monotonic()
        # Something is on its way to the caller that nothing else shows as busy: set when
        # the caller stops speaking (STT and turn detection run) and when text is handed
        # to TTS; cleared when the LLM starts answering or the agent's audio starts.
        self._pending_since: float | None = None
        # Latencies measured before the caller's turn is opened (stt) wait here for it.
        self._pending_latency: dict[str, float] = {}
        self._awaiting_turn = False
        self._pending_failovers: list[dict[str, Any]] = []  # STT switches, for the caller's turn
        self._in_utterance = False  # from the caller's speech start until their turn opens
        self.caller_speaking = False  # between the VAD's start and stop of the caller's speech
        # engine: realtime — audio to and from the speech-to-speech model is metered
        # (realtime_audio_secs): what the caller sent counts for the turn it opens.
        self.realtime = False
        self._new_utterance = False  # the next words played start a new utterance
        self._pending_usage: dict[str, float] = {}
        self._waiting_failovers: dict[str, list[dict[str, Any]]] = {}  # stage -> switches between turns
        self._pending_providers: dict[str, dict[str, Any]] = {}

    @property
    def llm_responses_in_flight(self) -> int:
        return len(self._llm_answering)

    @property
    def current(self) -> TurnRecord:
        return self.turns[-1]

    def _measure(self, name: str, start_mark: str, now: float) -> None:
        start = self._marks.pop(start_mark, None)
        target = self._pending_latency if self._awaiting_turn else self.current.latency_ms
        if start is not None and name not in target:
            target[name] = round((now - start) * 1000, 1)

    async def on_push_frame(self, data: FramePushed) -> None:
        frame, src, now = data.frame, data.source, time.monotonic()
        if isinstance(src, BaseOutputTransport):
            self._played(frame, now)
        if not data.first_push:
            return  # a frame is pushed again by every processor that passes it on
        if self.realtime and isinstance(frame, InputAudioRawFrame | TTSAudioRawFrame):
            self._meter_realtime(frame, src)
        elif self.realtime and isinstance(frame, TranscriptionFrame) and \
                getattr(src, "voxline_stage", None) == "realtime":
            # The model transcribes the caller after their turn has ended: the words
            # belong to that turn.
            self.current.user_text = f"{self.current.user_text} {frame.text}".strip()
        if isinstance(frame, VADUserStartedSpeakingFrame):
            self._marks.clear()  # a new utterance: earlier unfinished measurements are void
            self._in_utterance = self.caller_speaking = True
            self.last_activity = now
        elif isinstance(frame, VADUserStoppedSpeakingFrame):
            # VAD events are broadcast both ways; the first copy is the one that counts.
            self.caller_speaking = False
            self._marks.setdefault("speech_end", now)
            self._marks.setdefault("speech_end_v2v", now)
            self._pending_since = self._pending_since or now
            self._awaiting_turn = True
        elif isinstance(frame, TranscriptionFrame) and isinstance(src, STTService):
            self._measure("stt", "speech_end", now)
        elif isinstance(frame, LLMContextFrame):
            self._marks.setdefault("llm_start", now)
        elif isinstance(frame, LLMFullResponseStartFrame) and isinstance(src, LLMService):
            self._llm_answering.add(id(src))
            self._pending_since = None
        elif isinstance(frame, LLMFullResponseEndFrame) and isinstance(src, LLMService):
            self._llm_answering.discard(id(src))
            self.last_activity = now
        elif isinstance(frame, FailoverFrame):
            self._failover(frame)
        elif isinstance(frame, LLMTextFrame | FunctionCallInProgressFrame) and isinstance(
            src, LLMService
        ):
            self._measure("llm_ttft", "llm_start", now)
            if isinstance(frame, LLMTextFrame):  # TTS waits for text, not for tools
                self._marks.setdefault("tts_start", now)
                self._pending_since = self._pending_since or now
        elif isinstance(frame, TTSSpeakFrame):
            self._pending_since = self._pending_since or now
        elif isinstance(frame, TTSAudioRawFrame) and isinstance(src, TTSService):
            self._measure("tts_ttfb", "tts_start", now)
        elif isinstance(frame, BotStartedSpeakingFrame):
            self.bot_speaking = True
            self._new_utterance = True
            self._pending_since = None
            self.last_activity = now
        elif isinstance(frame, BotStoppedSpeakingFrame):
            self.bot_speaking = False
            self.last_activity = now
        elif isinstance(frame, InterruptionFrame):
            self.interruptions += 1
            # Cut off: while the agent speaks, or while the model is still writing an
            # answer it has begun to say (Pipecat calls the bot stopped when it stalls).
            if self.bot_speaking or (self.llm_responses_in_flight and self.current.agent_text):
                self.current.interrupted = True
        elif isinstance(frame, MetricsFrame):
            if self._in_utterance and any(isinstance(d, STTUsageMetricsData) for d in frame.data):
                # Transcribing the caller's utterance: usage of the turn it opens.
                served = {e["stage"]: e["to"] for e in self._pending_failovers if e["to"]}
                add_usage(self._pending_usage, self._pending_providers, frame, src, served)
            else:
                for stage in _stages(frame):
                    for event in self._waiting_failovers.pop(stage, []):
                        self._record_failover(self.current, event)
                add_usage(self.current.usage, self.current.providers, frame, src, self._served(self.current))

    def _meter_realtime(self, frame: InputAudioRawFrame | TTSAudioRawFrame, src: object) -> None:
        secs = len(frame.audio) / (2 * frame.sample_rate * frame.num_channels)
        if isinstance(frame, InputAudioRawFrame) and isinstance(src, BaseInputTransport):
            target = self._pending_usage
        elif isinstance(frame, TTSAudioRawFrame) and getattr(src, "voxline_stage", None) == "realtime":
            target = self.current.usage
        else:
            return
        target["realtime_audio_secs"] = target.get("realtime_audio_secs", 0.0) + secs

    def _failover(self, frame: FailoverFrame) -> None:
        self._llm_answering.discard(id(frame.failed_service))  # its answer will never end
        event = {"stage": frame.stage, "from": frame.from_provider, "to": frame.to_provider,
                 "reason": frame.reason}
        if frame.stage == "stt":
            self._pending_failovers.append(event)  # the utterance belongs to the caller's coming turn
        elif frame.during_turn:
            self._record_failover(self.current, event)
        else:
            # Between turns: it belongs to the next turn this stage serves.
            self._waiting_failovers.setdefault(frame.stage, []).append(event)

    @staticmethod
    def _record_failover(turn: TurnRecord, event: dict[str, Any]) -> None:
        turn.failovers.append(event)
        turn.usage["failovers"] = turn.usage.get("failovers", 0) + 1
        stage = turn.providers.setdefault(event["stage"], {})
        stage.setdefault("failed_over_from", []).append(f"{event['from']}: {event['reason']}")
        if event["to"] is not None and stage.get("provider") != event["to"]:
            stage.update(provider=event["to"], model=None)

    @staticmethod
    def _served(turn: TurnRecord) -> dict[str, str]:
        return {e["stage"]: e["to"] for e in turn.failovers if e["to"] is not None}

    def _played(self, frame: object, now: float) -> None:
        """Frames the output transport passes on once their audio is played."""
        if isinstance(frame, TTSAudioRawFrame):
            self._measure("voice_to_voice", "speech_end_v2v", now)
            self.last_activity = now
        elif isinstance(frame, TTSTextFrame):
            # Released as its audio plays: what the caller was actually played, in order.
            if getattr(frame, "includes_inter_frame_spaces", False):  # pieces of words (realtime)
                gap = " " if self._new_utterance and self.current.agent_text else ""
                self.current.agent_text = (self.current.agent_text + gap + frame.text).lstrip()
            else:
                self.current.agent_text = f"{self.current.agent_text} {frame.text}".strip()
            self._new_utterance = False
            self.last_activity = now

    # Called by the session from the context aggregators' events.
    async def open_turn(self) -> None:
        await self.close_turn()
        self.turns.append(TurnRecord(index=len(self.turns), agent=self.agent, language=self.language))

    def answered_by(self, agent: str, language: str | None = None, *, this_turn: bool = True) -> None:
        """A handoff: ``agent`` answers from now on (in ``language``), this turn included
        unless ``this_turn`` is False (the switch is for the turn about to open)."""
        self.agent = agent
        self.language = language if language is not None else self.language
        if this_turn:
            self.current.agent, self.current.language = agent, self.language

    async def user_turn(self, text: str) -> None:
        await self.open_turn()
        self.current.user_text = text
        self.current.latency_ms.update(self._pending_latency)
        self._pending_latency.clear()
        turn = self.current
        for key, amount in self._pending_usage.items():
            turn.usage[key] = round(turn.usage.get(key, 0.0) + amount, 3)
        for stage, served in self._pending_providers.items():
            turn.providers.setdefault(stage, {}).update(served)
        for event in self._pending_failovers:
            self._record_failover(turn, event)
        self._pending_usage, self._pending_providers = {}, {}
        self._pending_failovers.clear()
        self._in_utterance = False
        self._awaiting_turn = False

    async def mark_caller_silent(self) -> None:
        """The caller says nothing: what the agent says next belongs to a turn of its own."""
        await self.open_turn()

    def tool_call(self, record: ToolCallRecord) -> None:
        self.current.tool_calls.append(record)

    async def close_turn(self) -> None:
        turn = self.current
        if turn.ended_at is None:
            turn.ended_at = time.time()
            if self._on_turn_closed is not None:
                await self._on_turn_closed(turn)

    def busy(self, pending_timeout: float = 8.0) -> bool:
        """Whether an answer is being prepared or played (a pending turn counts for a while)."""
        return self.bot_speaking or self.computing(pending_timeout)

    def computing(self, pending_timeout: float = 8.0) -> bool:
        """Whether an answer is being worked out: the caller's words transcribed, the LLM
        writing, tools running, text on its way to speech (not: being played)."""
        pending = self._pending_since
        if pending is not None and time.monotonic() - pending > pending_timeout:
            self._pending_since = pending = None  # nothing came of it
        return self.llm_responses_in_flight > 0 or pending is not None or self.tools_running > 0

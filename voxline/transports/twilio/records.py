"""Call records: the minimal store interface the phone transport writes to.

The memory package's Store will implement :class:`CallRecords` against Postgres;
:class:`InMemoryCallRecords` is the stand-in until then (and in tests). The protocol
is deliberately small: the transport only opens a record, moves its state, notes a
transfer, appends transcript lines and closes it with a reason.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Literal, Protocol

CallState = Literal[
    "queued", "initiated", "ringing", "in-progress", "completed", "busy", "no-answer",
    "failed", "canceled",
]
CALL_STATES: frozenset[str] = frozenset(CallState.__args__)  # type: ignore[attr-defined]
FINAL_STATES = frozenset({"completed", "busy", "no-answer", "failed", "canceled"})

EndReason = Literal[
    "caller_hung_up",  # Twilio sent `stop` / status completed
    "agent_hung_up",   # end_call tool
    "transferred",     # transfer_call tool
    "dropped",         # the websocket closed without `stop`
    "failed",          # pipeline error, or busy/no-answer/failed outbound
    "machine",         # an answering machine picked up; the agent hung up (voicemail: hang_up)
    "voicemail",       # an answering machine picked up; a message was left
]


@dataclass
class TranscriptLine:
    role: Literal["user", "assistant", "dtmf", "system"]
    text: str
    interrupted: bool = False
    at: float = field(default_factory=time.time)


@dataclass
class CallRecord:
    call_sid: str
    direction: str = "inbound"
    agent: str | None = None
    from_number: str | None = None
    to_number: str | None = None
    state: str = "queued"
    answered_by: str | None = None
    started_at: float = field(default_factory=time.time)
    ended_at: float | None = None
    end_reason: str | None = None
    transfer_to: str | None = None
    transcript: list[TranscriptLine] = field(default_factory=list)
    stats: dict[str, int] = field(default_factory=dict)

    @property
    def duration_secs(self) -> float | None:
        return None if self.ended_at is None else self.ended_at - self.started_at


class CallRecords(Protocol):
    """What the phone transport needs from a store. All methods are idempotent upserts."""

    async def open(self, call_sid: str, *, direction: str, agent: str | None,
                   from_number: str | None, to_number: str | None) -> None: ...
    async def set_state(self, call_sid: str, state: str, *, answered_by: str | None = None) -> None: ...
    async def set_transfer(self, call_sid: str, target: str) -> None: ...
    async def append_transcript(self, call_sid: str, line: TranscriptLine) -> None: ...
    async def close(self, call_sid: str, *, reason: str, stats: dict[str, int] | None = None) -> None: ...
    async def get(self, call_sid: str) -> CallRecord | None: ...


class InMemoryCallRecords:
    """A dict of records; bounded transcript per call so a long call cannot eat memory."""

    def __init__(self, max_transcript_lines: int = 2000) -> None:
        self._records: dict[str, CallRecord] = {}
        self._max_lines = max_transcript_lines
        self._closed: dict[str, asyncio.Event] = {}

    def _get(self, call_sid: str) -> CallRecord:
        record = self._records.get(call_sid)
        if record is None:
            record = self._records[call_sid] = CallRecord(call_sid)
        return record

    async def open(self, call_sid: str, *, direction: str, agent: str | None,
                   from_number: str | None, to_number: str | None) -> None:
        r = self._get(call_sid)
        r.direction, r.agent = direction, agent or r.agent
        r.from_number, r.to_number = from_number or r.from_number, to_number or r.to_number

    async def set_state(self, call_sid: str, state: str, *, answered_by: str | None = None) -> None:
        r = self._get(call_sid)
        if state in CALL_STATES and r.state not in FINAL_STATES:
            r.state = state
        if answered_by:
            r.answered_by = answered_by

    async def set_transfer(self, call_sid: str, target: str) -> None:
        self._get(call_sid).transfer_to = target

    async def append_transcript(self, call_sid: str, line: TranscriptLine) -> None:
        transcript = self._get(call_sid).transcript
        if len(transcript) < self._max_lines:
            transcript.append(line)

    async def close(self, call_sid: str, *, reason: str, stats: dict[str, int] | None = None) -> None:
        r = self._get(call_sid)
        if r.end_reason is None:  # first close wins: "transferred" beats a later "dropped"
            r.end_reason, r.ended_at = reason, time.time()
        if stats:
            r.stats.update(stats)
        self._closed.setdefault(call_sid, asyncio.Event()).set()

    async def get(self, call_sid: str) -> CallRecord | None:
        return self._records.get(call_sid)

    async def wait_closed(self, call_sid: str, timeout: float) -> CallRecord | None:
        """Test/ops helper: wait for a call to be closed."""
        event = self._closed.setdefault(call_sid, asyncio.Event())
        await asyncio.wait_for(event.wait(), timeout)
        return self._records.get(call_sid)

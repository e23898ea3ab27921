"""What the caller has actually heard, from Twilio's `mark` echoes.

We send a mark after every chunk of agent audio. Twilio echoes a mark once the audio
queued before it has played -- *or* when a `clear` discards it. So every mark still
outstanding when we clear is retired: its echo must not count as "played".

Positions are seconds of agent audio sent on this stream (a monotonic timeline that
never resets; cleared audio simply never becomes "played"). Each TTS context records
where on that timeline its audio began, so a consumer can ask "how many seconds of
context X were played?" without caring about earlier turns or interruptions.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import OrderedDict
from dataclasses import dataclass


@dataclass
class MarkStats:
    sent: int = 0
    echoed: int = 0
    retired: int = 0
    stale_echoes: int = 0  # echoes of retired or unknown marks (ignored)


class MarkLedger:
    """Bookkeeping shared by the serializer (sends/echoes) and the heard-text gate."""

    def __init__(self, prefix: str = "vx", max_contexts: int = 64, *,
                 mark_interval_secs: float = 0.0) -> None:
        self._prefix = prefix
        self._counter = itertools.count(1)
        self._outstanding: OrderedDict[str, float] = OrderedDict()  # name -> end position
        self._retired: set[str] = set()
        self._context_start: OrderedDict[str, float] = OrderedDict()
        self._max_contexts = max_contexts
        self.sent_secs = 0.0
        self.played_secs = 0.0
        # One mark per ``mark_interval_secs`` of audio (0: after every chunk), plus one
        # at the end of each utterance (flush). Fewer marks = fewer messages both ways.
        self.mark_interval_secs = mark_interval_secs
        self._unmarked = 0.0  # seconds sent since the last mark
        self._settled = 0.0  # position up to which audio was played or cleared
        self.epoch = 0  # bumped once per barge-in (see bump_epoch); tools compare it
        self.stats = MarkStats()
        self._changed = asyncio.Event()

    # -- sender side -----------------------------------------------------------
    def audio_sent(self, seconds: float) -> str | None:
        """Account for one chunk of audio sent; the mark name to send after it, if one is due."""
        self.sent_secs += seconds
        self._unmarked += seconds
        if self._unmarked + 1e-9 < self.mark_interval_secs:
            return None
        return self._new_mark()

    def flush(self) -> str | None:
        """A mark for audio sent since the last one (end of an utterance), if any."""
        return self._new_mark() if self._unmarked > 0 else None

    def _new_mark(self) -> str:
        self._unmarked = 0.0
        name = f"{self._prefix}-{next(self._counter)}"
        self._outstanding[name] = self.sent_secs
        self.stats.sent += 1
        return name

    def begin_context(self, context_id: str | None) -> None:
        """A TTS context's first audio is about to be sent: remember where it starts."""
        if not context_id or context_id in self._context_start:
            return
        self._context_start[context_id] = self.sent_secs
        while len(self._context_start) > self._max_contexts:
            self._context_start.popitem(last=False)

    def clear(self) -> None:
        """We told Twilio to drop its buffer: nothing outstanding will be played."""
        if self._outstanding:
            self._retired.update(self._outstanding)
            self.stats.retired += len(self._outstanding)
            self._outstanding.clear()
        self._unmarked = 0.0
        self._settled = self.sent_secs
        self._notify()

    def bump_epoch(self) -> None:
        """A new interruption happened. Called by the heard-text observer, which sees the
        InterruptionFrame strictly before the next generation's first frame."""
        self.epoch += 1
        self._notify()

    # -- receiver side ---------------------------------------------------------
    def echo(self, name: str) -> bool:
        """Twilio says the audio before ``name`` finished playing. False if ignored."""
        end = self._outstanding.pop(name, None)
        if end is None:
            self._retired.discard(name)
            self.stats.stale_echoes += 1
            return False
        # Marks echo in order; an out-of-order echo still implies earlier audio played.
        for earlier in [n for n, e in self._outstanding.items() if e <= end]:
            del self._outstanding[earlier]
        self.played_secs = max(self.played_secs, end)
        self._settled = max(self._settled, end)
        self.stats.echoed += 1
        self._notify()
        return True

    # -- queries ---------------------------------------------------------------
    @property
    def idle(self) -> bool:
        """Everything sent has been played (or cleared)."""
        return not self._outstanding and self._unmarked == 0

    @property
    def backlog_secs(self) -> float:
        """Audio sent that Twilio has neither played nor discarded yet. With real-time
        pacing this stays around the pacing lead; it grows only if the far end stops
        consuming (not reading, not playing)."""
        return self.sent_secs - self._settled

    def played_in_context(self, context_id: str | None) -> float:
        """Seconds of the given TTS context that have been played (0 if not started)."""
        start = self._context_start.get(context_id or "")
        if start is None:
            return 0.0
        return max(0.0, self.played_secs - start)

    async def wait_changed(self, timeout: float) -> None:
        """Wait for the next echo or clear (or the timeout)."""
        event = self._changed  # captured first so a notify in between is not missed
        try:
            await asyncio.wait_for(event.wait(), timeout)
        except TimeoutError:
            pass

    async def wait_idle(self, timeout: float) -> bool:
        """Wait until all audio sent so far has been played; False on timeout."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not self.idle:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            await self.wait_changed(remaining)
        return True

    def _notify(self) -> None:
        # Swap in a fresh event so every current waiter wakes exactly once.
        event, self._changed = self._changed, asyncio.Event()
        event.set()

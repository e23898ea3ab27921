"""The first audio of an answer goes before the local LLM's next tokens.

On a small CPU the LLM and the TTS share the same cores: while Piper synthesizes an
answer's first clause, llama.cpp keeps writing the rest of the answer on both cores
and the caller's silence lasts as long as both together. The rest is not needed yet
(the first clause plays for a second or more), so the LLM waits between tokens until
the first audio exists, for at most ``MAX_WAIT_SECS``. Process-wide, as the cores
are: while one call's first audio is made, every call's local LLM pauses.
``VOXLINE_VOICE_FIRST=0`` turns it off (benchmarks/demo_latency.py --compare measures both).

A hold expires ``MAX_WAIT_SECS`` after it began, ended or not: a TTS stream abandoned
mid-way (an interruption can leave its generator suspended until it is collected)
must not slow every later answer of the process.
"""

from __future__ import annotations

import itertools
import os
import threading
import time

MAX_WAIT_SECS = 1.5  # a TTS that hangs must not stall the LLM for longer


class VoiceFirst:
    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self._holds: dict[int, float] = {}  # hold → when it began
        self._ids = itertools.count(1)
        self._quiet = threading.Condition()
        self.waits = 0  # how many times a token waited (tests, benchmarks)

    def _expiry(self, now: float) -> float | None:
        """When the youngest live hold expires (None: nothing held); drops expired ones."""
        for hold, began in list(self._holds.items()):
            if now - began >= MAX_WAIT_SECS:
                del self._holds[hold]
        return max(self._holds.values()) + MAX_WAIT_SECS if self._holds else None

    @property
    def speaking(self) -> bool:
        with self._quiet:
            return self._expiry(time.monotonic()) is not None

    def begin(self) -> int | None:
        """An answer's first audio is being synthesized (until ``end``); None: not held."""
        if not self.enabled:
            return None
        with self._quiet:
            hold = next(self._ids)
            self._holds[hold] = time.monotonic()
        return hold

    def end(self, hold: int | None) -> None:
        if hold is None:
            return
        with self._quiet:
            self._holds.pop(hold, None)
            self._quiet.notify_all()

    def wait(self, timeout: float | None = None) -> None:
        """Called by the LLM between tokens (in its worker thread, never on the loop)."""
        with self._quiet:
            now = time.monotonic()
            if self._expiry(now) is None:
                return
            self.waits += 1
            limit = now + (MAX_WAIT_SECS if timeout is None else timeout)
            while (expiry := self._expiry(now)) is not None and now < limit:
                self._quiet.wait(min(expiry, limit) - now)
                now = time.monotonic()


VOICE_FIRST = VoiceFirst(enabled=os.environ.get("VOXLINE_VOICE_FIRST", "1") != "0")

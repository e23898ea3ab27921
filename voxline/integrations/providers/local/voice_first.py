"""The first audio of an answer goes before the local LLM's next tokens.

On a small CPU the LLM and the TTS share the same cores: while Piper synthesizes an
answer's first clause, llama.cpp keeps writing the rest of the answer on both cores
and the caller's silence lasts as long as both together. The rest is not needed yet
(the first clause plays for a second or more), so the LLM waits between tokens until
the first audio exists, for at most ``MAX_WAIT_SECS``. Process-wide, as the cores
are: while one call's first audio is made, every call's local LLM pauses.
``VOXLINE_VOICE_FIRST=0`` turns it off (benchmarks/demo_latency.py --compare measures both).
"""

from __future__ import annotations

import os
import threading

MAX_WAIT_SECS = 1.5  # a TTS that hangs must not stall the LLM for longer


class VoiceFirst:
    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self._speaking = 0
        self._quiet = threading.Condition()
        self.waits = 0  # how many times a token waited (tests, benchmarks)

    @property
    def speaking(self) -> bool:
        with self._quiet:
            return self._speaking > 0

    def begin(self) -> bool:
        """An answer's first audio is being synthesized (until ``end``); False: not held."""
        if not self.enabled:
            return False
        with self._quiet:
            self._speaking += 1
        return True

    def end(self) -> bool:
        with self._quiet:
            self._speaking -= 1
            self._quiet.notify_all()
        return False

    def wait(self, timeout: float | None = None) -> None:
        """Called by the LLM between tokens (in its worker thread, never on the loop)."""
        with self._quiet:
            if self._speaking:
                self.waits += 1
                self._quiet.wait_for(lambda: not self._speaking, MAX_WAIT_SECS if timeout is None else timeout)


VOICE_FIRST = VoiceFirst(enabled=os.environ.get("VOXLINE_VOICE_FIRST", "1") != "0")

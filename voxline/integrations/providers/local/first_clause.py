"""Start speaking an answer at its first clause, not its first sentence.

A small local LLM on a CPU writes ~20-50 tokens a second, so waiting for a whole first
sentence before synthesis costs the caller most of a second of silence. Piper
synthesizes a clause in tens of milliseconds, so the first clause of each answer (at
least a few words, ending in , ; or :) goes to TTS at once; the rest is aggregated by
sentence as Pipecat does. Pipecat 1.14 offers no parameter to supply an aggregator,
so ``use_first_clause`` replaces the service's own.

Pipecat ends a sentence only once a non-blank character follows its full stop; the
grounding guard holds the next clause back, so that character can come a clause
later. It passes the blank after a full stop on at once, and a sentence followed by
a blank ends here (unless it ends in an abbreviation).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

from pipecat.utils.string import match_endofsentence
from pipecat.utils.text.base_text_aggregator import Aggregation
from pipecat.utils.text.simple_text_aggregator import SimpleTextAggregator

_CLAUSE_END = re.compile(r"[,;:](?=\s)")
_ENDED_BEFORE_BLANK = re.compile(r"[.!?]\s+$")
MIN_WORDS = 4


class FirstClauseAggregator(SimpleTextAggregator):
    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        self._first = True

    async def aggregate(self, text: str) -> AsyncIterator[Aggregation]:
        async for aggregation in super().aggregate(text):
            self._first = False
            yield aggregation
        if _ENDED_BEFORE_BLANK.search(self._text) and text.isspace():
            # "Sure. " then nothing: a new sentence would start with a capital ("Dr. " would not end).
            end = match_endofsentence(self._text.rstrip() + " A", language=self.language)
            if end and not self._text[end:].strip():
                sentence = self._text.strip(" ")
                self._first = False
                await super().reset()
                yield Aggregation(text=sentence, type=self.text.type)
                return
        if not self._first:
            return
        match = _CLAUSE_END.search(self._text)
        if match and len(self._text[: match.start()].split()) >= MIN_WORDS:
            clause, rest = self._text[: match.end()], self._text[match.end():]
            self._first = False
            await super().reset()
            self._text = rest
            yield Aggregation(text=clause.strip(" "), type=self.text.type)

    async def flush(self) -> Aggregation | None:
        self._first = True  # the next answer starts again with its first clause
        return await super().flush()

    async def handle_interruption(self) -> None:
        self._first = True
        await super().handle_interruption()


def use_first_clause(tts: Any) -> Any:
    language = getattr(tts._text_aggregator, "language", None)
    tts._text_aggregator = FirstClauseAggregator(language=language)
    return tts

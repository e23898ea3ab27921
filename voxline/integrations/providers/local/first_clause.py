"""Start speaking an answer at its first clause, not its first sentence.

A small local LLM on a CPU writes ~20-50 tokens a second, so waiting for a whole first
sentence before synthesis costs the caller most of a second of silence. Piper
synthesizes a clause in tens of milliseconds, so the first clause of each answer (ending
in , ; or :) goes to TTS at once; the rest is aggregated by sentence as Pipecat does.
One word is enough: "Sure," plays for half a second, and by then the LLM has written
and Piper has synthesized the next clause, so the caller hears no gap, only the comma's
pause. Agents taking over a call open so ("Sure, I can help you with that."). Pipecat
1.14 offers no parameter to supply an aggregator, so ``use_first_clause`` replaces the
service's own.

Every TTS (cloud ones too, through ``use_sentence_ends``) also ends a sentence at the
blank after its full stop. Pipecat waits for the next non-blank character, but the
grounding guard holds the next clause back until it is whole, so that character
would come a clause later; the guard passes the blank on at once instead.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

from pipecat.utils.string import match_endofsentence
from pipecat.utils.text.base_text_aggregator import Aggregation, TextType
from pipecat.utils.text.simple_text_aggregator import SimpleTextAggregator

_CLAUSE_END = re.compile(r"[,;:](?=\s)")
_ENDED_BEFORE_BLANK = re.compile(r"[.!?]\s+$")
MIN_WORDS = 1


class BlankEndsSentence(SimpleTextAggregator):
    """A sentence ends at a blank after its full stop (unless at an abbreviation)."""

    async def aggregate(self, text: str) -> AsyncIterator[Aggregation]:
        async for aggregation in super().aggregate(text):
            yield aggregation
        if text.isspace() and _ENDED_BEFORE_BLANK.search(self._text):
            # As if a capital followed: "Sure. A" splits, "Dr. A" does not.
            end = match_endofsentence(self._text.rstrip() + " A", language=self.language)
            if end and not self._text[end:].strip():
                sentence = self._text.strip(" ")
                await super().reset()
                yield Aggregation(text=sentence, type=self.text.type)


class FirstClauseAggregator(BlankEndsSentence):
    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        self._first = True

    async def aggregate(self, text: str) -> AsyncIterator[Aggregation]:
        async for aggregation in super().aggregate(text):
            self._first = False
            yield aggregation
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


def use_sentence_ends(tts: Any) -> Any:
    """Pipecat's plain sentence aggregator (a vendor's own, or token mode, is kept)."""
    aggregator = getattr(tts, "_text_aggregator", None)
    mode = getattr(aggregator, "_aggregation_type", None)  # no public accessor in Pipecat 1.14
    if type(aggregator) is SimpleTextAggregator and mode == TextType.SENTENCE:
        tts._text_aggregator = BlankEndsSentence(language=aggregator.language)
    return tts

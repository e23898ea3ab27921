"""Grounded answers: the agent may only say it did what a tool actually did.

Two kinds of ungrounded speech are caught, whatever the LLM provider:

- **claims of an action** ("you're booked", "I've cancelled it", "I sent it") that no
  tool of that kind performed successfully in this turn (or, for a repeat of an
  earlier action of this call, with details that action did not have);
- **example content stated as fact**: a name or detail that appears in the spec's
  few-shot examples but nowhere in this call (what the caller said, tool results, the
  prompt, what memory recalled). An example name used to address the caller
  ("Sure, Tom,") is simply left out; anything else is corrected.

The caller hears the spec's correction for that kind instead, and the event is
recorded as a tool call named ``guardrail:grounding`` in the turn, so it shows in the
stored call and ``voxline calls show``.

It works on the LLM's stream: text is held back only until the end of its clause
(TTS waits for the first clause anyway), and a clause whose claim word may still turn
into a question ("shall I get that booked?") until the end of its sentence.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from pipecat.frames.frames import (
    Frame,
    InterruptionFrame,
    LLMFullResponseEndFrame,
    LLMFullResponseStartFrame,
    LLMTextFrame,
    TTSSpeakFrame,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

from voxline.processors.call_log import CallLog, ToolCallRecord

GUARDRAIL = "guardrail:grounding"

# Words that claim an action is done, by kind of action.
_CLAIMS: dict[str, str] = {
    "book": r"booked|reserved|have you down|put you down|got you down",
    "cancel": r"cancell?ed|called off",
    "transfer": r"transferred|putting you through|connecting you",
    "send": r"sent|e-?mailed|texted",
    "schedule": r"scheduled",
    "confirm": r"confirmed|all set",
}
_CLAIM_RE = {k: re.compile(rf"\b(?:{v})\b", re.I) for k, v in _CLAIMS.items()}
# Tool name words that say which kinds of action a tool performs.
_TOOL_KINDS: dict[str, tuple[str, ...]] = {
    "book": ("book", "schedule", "confirm"), "reserv": ("book", "schedule", "confirm"),
    "cancel": ("cancel", "confirm"), "transfer": ("transfer", "confirm"),
    "send": ("send", "confirm"), "email": ("send", "confirm"), "sms": ("send", "confirm"),
    "message": ("send", "confirm"), "notify": ("send", "confirm"),
    "schedule": ("schedule", "book", "confirm"), "appointment": ("schedule", "book", "confirm"),
}
_LOOKUP = re.compile(r"^(?:find|get|list|search|lookup|look_up|check|show|read|query)(?:_|$)", re.I)


def _kinds_of(tool_name: str) -> set[str]:
    """The kinds of action a tool's name says it performs: none for look-ups
    (find_booking), only cancelling for cancel_booking."""
    name = tool_name.lower()
    if _LOOKUP.match(name):
        return set()
    for stem in ("cancel", "transfer"):  # their objects (a booking) say nothing
        if stem in name:
            return set(_TOOL_KINDS[stem])
    return {k for stem, ks in _TOOL_KINDS.items() if stem in name for k in ks}


# Before the claim word in its clause, these make it no statement of fact.
_NOT_ASSERTED = re.compile(
    r"\b(?:not|never|no|nothing|yet|unable|cannot|can't|couldn't|won't|haven't|hasn't|isn't|wasn't|"
    r"will|would|can|could|shall|should|may|might|going to|let me|i'll|want|like|need|needs|"
    r"to be|to get|to have|if|once|when|before|after|until|whether|how|which|what)\b",
    re.I,
)
_CLAUSE_END = re.compile(r"[,;:.!?](?=\s)|[.!?]$")
_NUMBER_WORDS = {w: str(i) for i, w in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve".split())}
_COMMON = {"i", "i'm", "i'd", "sure", "yes", "no", "please", "done", "okay", "ok", "hello", "hi",
           "thanks", "thank", "the", "a", "an", "and", "you", "your", "you're", "where", "what",
           "that's", "that", "bye", "goodbye", "for", "on", "at", "to", "of", "table", "food"}
_TIME_LIKE = re.compile(r"^\d{1,2}(:\d\d)?\s*([ap]\.?m\.?)?$", re.I)

DEFAULT_CORRECTIONS = {
    "book": "Sorry, I haven't booked that yet. Could you give me the details again?",
    "cancel": "Sorry, I haven't cancelled anything yet. Could you tell me which booking to cancel?",
    "transfer": "Sorry, I can't transfer you right now.",
    "send": "Sorry, I haven't sent anything yet.",
    "schedule": "Sorry, nothing is scheduled yet. Could you give me the details again?",
    "confirm": "Sorry, that isn't done yet. Could you give me the details again?",
    "example": "Sorry, I mixed something up. Could you tell me that again?",
    "failed": "Sorry, that didn't go through.",
    "failed_cancel": "Sorry, I couldn't find a booking to cancel.",
}


def _norm(text: str) -> str:
    words = re.findall(r"[\w']+", text.lower())
    return " ".join(_NUMBER_WORDS.get(w, w) for w in words)


def _strings(value: Any) -> Iterable[tuple[str, str]]:
    """(key, string) pairs anywhere in a JSON-like value."""
    if isinstance(value, dict):
        for k, v in value.items():
            for key, s in _strings(v):
                yield key or str(k), s
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)
    elif isinstance(value, str):
        yield "", value


def _capitalized_runs(text: str) -> list[str]:
    """Runs of capitalized words that do not open a sentence: names, places."""
    runs = []
    for sentence in re.split(r"(?<=[.!?:])\s+", text):
        words = sentence.split()
        run: list[str] = []
        for i, raw in enumerate(words):
            word = raw.strip(",;:.!?\"()")
            if i > 0 and word[:1].isupper() and word.lower() not in _COMMON:
                run.append(word)
                continue
            if run:
                runs.append(" ".join(run))
            run = []
        if run:
            runs.append(" ".join(run))
    return runs


@dataclass
class ExampleFacts:
    """What only the spec's examples say: their names and details."""

    entities: dict[str, bool] = field(default_factory=dict)  # entity (lower) -> is a person's name

    @classmethod
    def from_spec(cls, examples: Iterable[Any], known_text: str) -> ExampleFacts:
        known = _norm(known_text)
        found: dict[str, bool] = {}

        def add(candidate: str, is_name: bool) -> None:
            c = candidate.strip(" ,.!?").lower()
            if (len(c) < 3 or not re.search(r"[a-z]", c) or _TIME_LIKE.match(c) or c in _COMMON
                    or re.search(rf"\b{re.escape(_norm(c))}\b", known)):
                return
            found[c] = found.get(c, False) or is_name

        for ex in examples:
            for arguments in (ex.call or {}).values():
                for key, s in _strings(arguments):
                    if len(s.split()) <= 3 and not re.search(r"[,.!?;:]", s):
                        add(s, "name" in key.lower())
                    else:  # a sentence the example wrote into an argument (a goodbye)
                        for run in _capitalized_runs(s):
                            add(run, True)
            for _, s in _strings(ex.result):
                if len(s.split()) <= 3:
                    add(s, False)
            for text in (ex.caller, ex.say or ""):
                for run in _capitalized_runs(text):
                    add(run, False)
        # A word of a longer entity ("house" of "sakura house") is no entity of its own.
        for short in [e for e in found if any(e != o and re.search(rf"\b{re.escape(e)}\b", o) for o in found)]:
            if not found[short]:
                del found[short]
        return cls(found)


@dataclass
class Verdict:
    kind: str  # a claim kind, "example" or "failed"
    words: str  # what triggered it
    rewrite: str | None = None  # the text with an example name left out, when that suffices
    of: str | None = None  # for "failed": the kind of action that did not happen


class GroundingChecker:
    """Decides whether a sentence of the agent is grounded in what happened in the call."""

    def __init__(self, spec: Any, log: CallLog, extra_context: Iterable[str] = ()):
        self._log = log
        g = spec.guardrails
        self.corrections = {**DEFAULT_CORRECTIONS, **g.corrections}
        self._tool_kinds: dict[str, set[str]] = {}
        for tool in spec.tools:
            self._tool_kinds[tool.name] = _kinds_of(tool.name)
        for kind, names in g.actions.items():
            for name in names:
                self._tool_kinds.setdefault(name, set()).update({kind, "confirm"})
        self._static_known = " ".join([spec.system_prompt, spec.greeting or "", *extra_context,
                                       *(t.description for t in spec.tools)])
        self.facts = ExampleFacts.from_spec(spec.examples, self._static_known)

    # What the call has established so far.
    def _calls(self) -> list[tuple[int, ToolCallRecord]]:
        return [(t.index, c) for t in self._log.turns for c in t.tool_calls
                if c.error is None and not c.name.startswith("guardrail:")]

    def _known_text(self) -> str:
        said = " ".join(t.user_text for t in self._log.turns)
        # Results, not arguments: the model writes arguments (a goodbye "Goodbye, Tom!").
        tools = " ".join(json.dumps(c.result, default=str) for _, c in self._calls())
        return _norm(f"{self._static_known} {said} {tools}")

    @staticmethod
    def _failed(kind: str, result: Any) -> bool:
        """A tool that ran but whose result says the action did not happen."""
        if not isinstance(result, dict):
            return result is False
        if "error" in result:
            return True
        stem = kind[:4]
        for key, value in result.items():
            k = str(key).lower()
            if (k.startswith(stem) or k in ("ok", "success", "done")) and not value:
                return True
        return False

    def claim(self, sentence: str) -> Verdict | None:
        """An unsupported claim of an action in ``sentence``, if any."""
        for kind, pattern in _CLAIM_RE.items():
            for match in pattern.finditer(sentence):
                clause = re.split(r"[,;:.!?]", sentence[: match.start()])[-1]
                if _NOT_ASSERTED.search(clause):
                    continue
                verdict = self._supported(kind, sentence, match.group(0))
                if verdict is not None:
                    return verdict
        return None

    def _supported(self, kind: str, sentence: str, words: str) -> Verdict | None:
        current = self._log.current.index
        same_kind = [(i, c) for i, c in self._calls() if kind in self._tool_kinds.get(c.name, set())]
        now = [c for i, c in same_kind if i == current]
        if now:
            if all(self._failed(kind, c.result) for c in now):
                return Verdict("failed", words, of=kind)
            return None
        earlier = [c for _, c in same_kind if not self._failed(kind, c.result)]
        if earlier:  # a repeat of an earlier action: its details must be that action's
            known = _norm(" ".join(json.dumps([c.arguments, c.result], default=str) for c in earlier))
            if all(re.search(rf"\b{re.escape(d)}\b", known) for d in _details(sentence)):
                return None
        return Verdict(kind, words)

    def example(self, sentence: str) -> Verdict | None:
        """Example content in ``sentence`` that this call never established."""
        if not self.facts.entities:
            return None
        known = self._known_text()
        rewritten = sentence
        for entity, is_name in self.facts.entities.items():
            pattern = re.compile(rf"\b{re.escape(entity)}\b", re.I)
            if not pattern.search(rewritten) or re.search(rf"\b{re.escape(_norm(entity))}\b", known):
                continue
            vocative = re.compile(rf"(?:,\s*|\s+)({re.escape(entity)})(?=\s*[,.!?:]|\s*$)", re.I)
            if is_name and vocative.search(rewritten):
                rewritten = vocative.sub("", rewritten)
                rewritten = re.sub(r",\s*([,.!?:])", r"\1", rewritten)
                continue
            return Verdict("example", entity)
        if rewritten != sentence:
            return Verdict("example", "name", rewrite=rewritten)
        return None


_ENDED = re.compile(r"[.!?][\"')]*\s*$")


def _sentences(text: str) -> list[str]:
    """``text`` cut after each sentence end; the last part may be unfinished."""
    parts = re.split(r"(?<=[.!?])\s+", text)
    return [p for p in parts if p] or [text]


def _details(sentence: str) -> list[str]:
    """Names and numbers a sentence states: what a repeated confirmation must match."""
    details = [_norm(w) for w in _capitalized_runs(sentence)]
    details += [_NUMBER_WORDS.get(w, w) for w in re.findall(r"[\w']+", sentence.lower())
                if w.isdigit() or w in _NUMBER_WORDS]
    return [d for d in details if d]


class GroundingGuard(FrameProcessor):
    """Sits after the LLM: passes grounded text on clause by clause, corrects the rest."""

    def __init__(self, spec: Any, log: CallLog, *, extra_context: Iterable[str] = (), **kwargs: Any):
        super().__init__(**kwargs)
        self._checker = GroundingChecker(spec, log, extra_context)
        self._log = log
        self.events: list[dict[str, Any]] = []
        self._reset()

    def _reset(self) -> None:
        self._pending: list[LLMTextFrame] = []  # held back: the clause being checked
        self._sentence = ""  # the sentence so far, released part included
        self._blocked = False
        self._released = False  # some of this answer went on to TTS
        self._released_text = ""

    @property
    def _pending_text(self) -> str:
        return "".join(f.text for f in self._pending)

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if direction != FrameDirection.DOWNSTREAM:
            await self.push_frame(frame, direction)
        elif isinstance(frame, LLMFullResponseStartFrame | InterruptionFrame):
            self._reset()
            await self.push_frame(frame, direction)
        elif isinstance(frame, LLMTextFrame):
            if not self._blocked:
                if not self._pending and not self._sentence and self._released \
                        and frame.text[:1].isspace() and not frame.skip_tts:
                    # A sentence just ended: its blank goes on now, so TTS need not wait
                    # for the next clause to know the sentence is over.
                    blank = frame.text[: len(frame.text) - len(frame.text.lstrip())]
                    gap = LLMTextFrame(blank)
                    gap.includes_inter_frame_spaces = frame.includes_inter_frame_spaces
                    gap.append_to_context = frame.append_to_context
                    await self.push_frame(gap)
                    frame.text = frame.text[len(blank):]
                    if not frame.text:
                        return
                self._pending.append(frame)
                if _CLAUSE_END.search(self._pending_text):
                    await self._check(final=False)
        elif isinstance(frame, LLMFullResponseEndFrame):
            await self._check(final=True)
            self._reset()
            await self.push_frame(frame, direction)
        elif isinstance(frame, TTSSpeakFrame):
            await self.push_frame(self._speak_frame(frame), direction)
        else:
            await self.push_frame(frame, direction)

    def _speak_frame(self, frame: TTSSpeakFrame) -> TTSSpeakFrame:
        """Sentences the LLM wrote into a tool's arguments (a goodbye): no example names."""
        verdict = self._checker.example(frame.text)
        if verdict is None or verdict.rewrite is None:
            return frame
        self._record(verdict, frame.text, verdict.rewrite)
        return TTSSpeakFrame(verdict.rewrite, append_to_context=frame.append_to_context)

    async def _check(self, *, final: bool) -> None:
        if self._blocked or not self._pending:
            return
        sentence = self._sentence + self._pending_text
        parts = _sentences(sentence)
        unfinished = not final and not _ENDED.search(parts[-1])
        verdict: Verdict | None = None
        for i, part in enumerate(parts):
            if part.rstrip().endswith("?"):
                continue  # a question claims nothing
            claim = self._checker.claim(part)
            if claim is not None and unfinished and i == len(parts) - 1:
                return  # it may still become a question: wait for the sentence's end
            if claim is not None:
                verdict = claim
                break
        verdict = verdict or self._checker.example(sentence)
        if verdict is not None and verdict.rewrite is not None:
            if verdict.rewrite.startswith(self._sentence):  # the released part is unchanged
                self._record(verdict, sentence, verdict.rewrite)
                rest = verdict.rewrite[len(self._sentence):]
                self._pending = [LLMTextFrame(rest)] if rest else []
                sentence, verdict = verdict.rewrite, None
            else:
                verdict = Verdict("example", verdict.words)
        if verdict is not None:
            corrections = self._checker.corrections
            correction = (corrections.get(f"{verdict.kind}_{verdict.of}") if verdict.of else None) \
                or corrections.get(verdict.kind) or DEFAULT_CORRECTIONS["confirm"]
            self._record(verdict, sentence, correction)
            self._pending, self._blocked = [], True
            lead = ""
            if self._released:  # after what was already said: a sentence of its own
                lead = " " if self._released_text.rstrip()[-1:] in (".", "!", "?") else ". "
            await self.push_frame(LLMTextFrame(f"{lead}{correction}"))
            return
        for f in self._pending:
            await self.push_frame(f)
            self._released = True
            self._released_text = f.text
        self._pending = []
        last = _sentences(sentence)[-1]
        self._sentence = "" if _ENDED.search(last) else last  # claims are judged a sentence at a time

    def _record(self, verdict: Verdict, text: str, said: str) -> None:
        event = {"kind": verdict.kind, "words": verdict.words, "text": text.strip()}
        self.events.append(event)
        self._log.tool_call(ToolCallRecord(name=GUARDRAIL, arguments=event, result={"said": said}))

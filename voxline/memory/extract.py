"""Turning a transcript into a summary and candidate facts.

With an LLM (`summarize: async (prompt) -> str`) one prompt returns both as JSON; with
none, or when its answer cannot be parsed, a deterministic extractive fallback runs.
Card numbers are removed before any text leaves for the summarizer.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from voxline.memory.policy import DEFAULT_KINDS
from voxline.memory.redact import redact

log = logging.getLogger("voxline.memory")

Summarizer = Callable[[str], Awaitable[str]]


@dataclass(frozen=True)
class Line:
    role: str  # user | assistant
    text: str


@dataclass(frozen=True)
class Fact:
    kind: str
    text: str
    importance: float = 0.5


PROMPT = """You maintain long-term memory for a voice agent. From the call transcript below,
write a JSON object with two keys:
"summary": two or three sentences on what the caller wanted and what was agreed;
"facts": a list of durable facts about the caller worth remembering for future calls,
each {{"kind": one of {kinds}, "text": a short third-person sentence, "importance": 0..1}}.
Only facts the caller stated or the agent committed to. Never card numbers or health details.
Answer with the JSON object only.

Transcript:
{transcript}"""

_NAME = re.compile(
    r"\b(?i:my name is|my name's|call me|this is)\s+([A-Z][a-z'-]+(?:\s+[A-Z][a-z'-]+)?)"
)
_PREF = re.compile(r"\bi(?: would|'d)? (?:prefer|like|love|always want)\s+([^.?!]{3,80})", re.I)
_PROBLEM = re.compile(r"\b(?:problem|issue|broken|not working|doesn't work|complain\w*)\b", re.I)
_BOOKED = re.compile(r"\b(?:booked|reserved|confirmed|scheduled|your booking)\b", re.I)
_PROMISE = re.compile(r"\b(?:i will|i'll|we will|we'll)\s+(?:call|send|email|follow)", re.I)
_NOT_NAMES = {"The", "A", "It", "Just", "Calling", "About", "Not", "Here", "Me"}


def _sentences(text: str) -> list[str]:
    return [s.strip() for s in re.split(r"(?<=[.?!])\s+", text) if s.strip()]


def render(lines: Sequence[Line]) -> str:
    return "\n".join(f"{ln.role}: {redact(ln.text, ('card',))}" for ln in lines)


def extractive_summary(lines: Sequence[Line], max_chars: int = 400) -> str:
    """No LLM: the caller's first request and the agent's last answer, trimmed."""
    user = [s for ln in lines if ln.role == "user" for s in _sentences(ln.text)]
    agent = [s for ln in lines if ln.role == "assistant" for s in _sentences(ln.text)]
    asked = " ".join(user[:2]) or "nothing"
    parts = [f"Caller said: {asked}"]
    if agent:
        parts.append(f"Agent's last reply: {agent[-1]}")
    return redact(" ".join(parts), ("card",))[:max_chars]


def rule_facts(lines: Sequence[Line]) -> list[Fact]:
    """No LLM: names, stated preferences, problems, bookings and promises, by pattern."""
    facts: list[Fact] = []
    for ln in lines:
        for sent in _sentences(ln.text):
            if ln.role == "user":
                m = _NAME.search(sent)
                if m and m.group(1).split()[0] not in _NOT_NAMES:
                    facts.append(Fact("name", f"The caller's name is {m.group(1)}.", 0.9))
                m = _PREF.search(sent)
                if m:
                    facts.append(
                        Fact("preference", f"The caller prefers {m.group(1).strip()}.", 0.6)
                    )
                if _PROBLEM.search(sent):
                    facts.append(Fact("problem", f"The caller reported: {sent}", 0.7))
            elif ln.role == "assistant":
                if _BOOKED.search(sent):
                    facts.append(Fact("booking", f"Agent confirmed: {sent}", 0.8))
                elif _PROMISE.search(sent):
                    facts.append(Fact("commitment", f"Agent promised: {sent}", 0.8))
    return facts


def parse_llm_answer(answer: str) -> tuple[str, list[Fact]] | None:
    """The JSON object out of an LLM answer (tolerating prose or code fences around it)."""
    start, end = answer.find("{"), answer.rfind("}")
    if start < 0 or end <= start:
        return None
    try:
        obj = json.loads(answer[start : end + 1])
        summary = str(obj.get("summary", "")).strip()
        facts = []
        for f in obj.get("facts") or []:
            kind, text = str(f.get("kind", "fact")).lower(), str(f.get("text", "")).strip()
            imp = float(f.get("importance", 0.5))
            if text:
                facts.append(Fact(kind, text, max(0.0, min(1.0, imp))))
        return summary, facts
    except (ValueError, TypeError, AttributeError):
        return None


async def summarize_and_extract(
    lines: Sequence[Line], summarize: Summarizer | None, call_id: str
) -> tuple[str, list[Fact]]:
    if summarize is not None:
        try:
            prompt = PROMPT.format(kinds=", ".join(DEFAULT_KINDS), transcript=render(lines))
            parsed = parse_llm_answer(await summarize(prompt))
            if parsed and parsed[0]:
                return parsed
            log.warning("%s summarizer answer unparseable; using extractive fallback", call_id)
        except Exception as e:  # the summarizer is the agent's LLM: anything may fail
            log.warning(
                "%s summarizer failed (%s); using extractive fallback", call_id, type(e).__name__
            )
    return extractive_summary(lines), rule_facts(lines)

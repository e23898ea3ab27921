"""A persona per language: the agent answers each caller in the language they speak.

``languages: {es: {prompt: ..., tts: ...}}`` makes each listed language an implicit member
of the call's team (handoff.Team), keyed ``AGENT:CODE``: the agent's own spec with the
persona's blocks on top. The handoff machinery already switches prompt, tools, voice and
providers mid-call and keeps the conversation, so a language switch is a switch to that
member, with three differences from a handoff:

- the STT triggers it, not the LLM: the local Whisper detects each utterance's language
  among the agent's (providers/local/whisper_language.py) and labels the transcription
  with it; the :class:`LanguageGate` right behind the STT switches the team before the
  words reach the context, so the persona answers this very turn with no extra LLM pass;
- the switch frames travel with the transcription (pushed by the gate, ahead of it), not
  queued at the pipeline's head behind it;
- it does not use up the turn's handoff: a Spanish caller can still be passed to bookings,
  whose Spanish persona answers if it has one.

A caller who goes back to the agent's own language gets the agent back the same way.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from pipecat.frames.frames import (
    Frame,
    ManuallySwitchServiceFrame,
    TranscriptionFrame,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

from voxline.spec import AgentSpec

if TYPE_CHECKING:
    from voxline.orchestration.handoff import Team


def code(language: Any) -> str:
    """``es``, from ``es``, ``es-MX`` or Pipecat's ``Language.ES_MX``."""
    return str(getattr(language, "value", language) or "").split("-")[0].split("_")[0].lower()


def persona_key(agent: str, language: str) -> str:
    return f"{agent}:{language}"


def heard_languages(spec: AgentSpec) -> list[str]:
    """The languages an agent's STT listens for: its own first."""
    return [code(spec.language), *spec.languages]


# In the language itself: an instruction in English pulls a small model into English.
_ANSWER_IN = {"en": "The caller speaks English: answer in English only.",
              "es": "La persona que llama habla español: responde solo en español.",
              "de": "Der Anrufer spricht Deutsch: antworte nur auf Deutsch.",
              "fr": "L'appelant parle français : réponds uniquement en français.",
              "it": "Chi chiama parla italiano: rispondi solo in italiano.",
              "pt": "Quem liga fala português: responde apenas em português."}


def language_note(spec: AgentSpec, agent: AgentSpec) -> list[str]:
    """For an agent with personas, a line saying which language to answer in: a small model
    otherwise goes on in the language of the conversation carried over."""
    note = _ANSWER_IN.get(code(spec.language)) if agent.languages else None
    return [note] if note else []


def persona_spec(spec: AgentSpec, language: str) -> AgentSpec:
    """``spec`` as it speaks ``language``: its persona's blocks replace the agent's own."""
    persona = spec.languages[language]
    update: dict[str, Any] = {"language": language, "languages": {}}
    for name in ("prompt", "greeting", "fallback", "examples"):
        if getattr(persona, name) is not None:
            update[name] = getattr(persona, name)
    for kind in ("stt", "llm", "tts"):  # a persona's block is one provider, no failover list
        if getattr(persona, kind) is not None:
            update[kind], update[f"{kind}_fallbacks"] = getattr(persona, kind), []
    return spec.model_copy(update=update)


def check_personas(spec: AgentSpec) -> list[tuple[str, str]]:
    """``voxline check`` of the provider blocks each persona gives, at their field paths."""
    from voxline.integrations.providers.registry import check_providers

    problems = []
    for language, persona in spec.languages.items():
        given = tuple(kind for kind in ("stt", "llm", "tts") if getattr(persona, kind) is not None)
        problems += [(f"languages.{language}.{path}", message) for path, message
                     in check_providers(persona_spec(spec, language)) if given and path.startswith(given)]
    return problems


def with_personas(members: Mapping[str, AgentSpec]) -> Iterator[tuple[str, AgentSpec, list[str]]]:
    """(team key, spec, languages its STT listens for) of every member and persona; the
    agents before their personas, so a persona without its own STT shares the agent's."""
    for name, spec in members.items():
        yield name, spec, heard_languages(spec)
    for name, spec in members.items():
        for language in spec.languages:
            yield persona_key(name, language), persona_spec(spec, language), heard_languages(spec)


def listen_for(stt: Any, spec: AgentSpec, languages: list[str]) -> None:
    """Tell an STT that detects languages (the local Whisper) which ones to listen for."""
    listen = getattr(stt, "listen_for", None)
    if callable(listen) and len(languages) > 1:
        from voxline.integrations.providers.local.whisper_language import MIN_PROBABILITY

        listen(languages, float(spec.stt.options.get("language_confidence", MIN_PROBABILITY)),
               current=code(spec.language))  # a persona's own STT starts in its language


def in_language(members: Mapping[str, Any], agent: str, language: str) -> str | None:
    """The team key of ``agent`` speaking ``language``: the agent itself in its own
    language, its persona in another it lists, else None."""
    base = members.get(agent)
    if base is None:
        return None
    if code(base.spec.language) == language:
        return agent
    key = persona_key(agent, language)
    return key if key in members else None


class LanguageGate(FrameProcessor):
    """Behind the team's STT: a transcription in another of the agent's languages switches
    the team to that persona before the words go on (see the module's notes)."""

    def __init__(self, team: Team, **kwargs: Any):
        super().__init__(name="LanguageGate", **kwargs)
        self._team = team
        self._greeted: set[str] = set()

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, TranscriptionFrame) and direction is FrameDirection.DOWNSTREAM:
            await self._follow(code(frame.language))
        await self.push_frame(frame, direction)

    async def _follow(self, language: str) -> None:
        team = self._team
        agent = team.members[team.current].spec.name
        target = in_language(team.members, agent, language) if language else None
        if target is None or target == team.current:
            return
        await team.switch(target, handoff=False, run_llm=False, send=self._send)
        persona = team.members[agent].spec.languages.get(language)
        if persona is not None and persona.greeting and target not in self._greeted:
            self._greeted.add(target)  # said once, in the new voice, before the persona's answer
            team.llm.say_first = persona.greeting

    async def _send(self, frames: list[Frame]) -> None:
        stt = self._team.stt
        for frame in frames:
            upstream = isinstance(frame, ManuallySwitchServiceFrame) and frame.service in getattr(stt, "services", [])
            await self.push_frame(frame, FrameDirection.UPSTREAM if upstream else FrameDirection.DOWNSTREAM)

"""Scenario files for ``voxline simulate``: an agent and a scripted caller."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, ValidationError, model_validator

from voxline.errors import SpecError
from voxline.spec import _Strict, load_yaml


class Expect(_Strict):
    tool_called: str | list[str] | None = None
    no_tool_called: bool | None = None
    says_any: list[str] | None = None
    # None of these words in what the agent said (an invented name, a false "booked").
    says_none: list[str] | None = None
    # Arguments of the expected tool's call: each key's value contains one of the strings.
    tool_args: dict[str, list[str]] | None = None
    # What the caller heard (the agent's audio, transcribed) has any of these.
    hears_any: list[str] | None = None
    interrupted: bool | None = None
    # The agent that answered the turn (a handoff's target answers the turn it happened in).
    agent: str | None = None
    # The language it answered in (a persona of ``languages:`` answers in its own).
    language: str | None = None
    call_ended: bool | None = None


class Turn(_Strict):
    """Exactly one action: say, audio, silence or barge_in (say over the agent's answer)."""

    say: str | None = None
    audio: Path | None = None
    silence: float | None = Field(None, gt=0, le=120)
    barge_in: str | None = None
    # How far into the agent's answer (from its first audio) a barge_in cuts in.
    barge_in_after_secs: float = Field(0.8, ge=0, le=60)
    expect: Expect | None = None

    @model_validator(mode="after")
    def _one_action(self) -> Turn:
        actions = [a for a in ("say", "audio", "silence", "barge_in") if getattr(self, a) is not None]
        if len(actions) != 1:
            raise ValueError(f"a turn needs exactly one of say, audio, silence, barge_in; got {actions or 'none'}")
        return self


class Caller(_Strict):
    id: str | None = None


class Scenario(_Strict):
    agent: Path
    caller: Caller = Field(default_factory=Caller)
    turns: list[Turn] = Field(default_factory=list)
    # How long the caller waits for an answer before giving up on a turn.
    answer_timeout_secs: float = Field(45.0, gt=0)


def load_scenario(path: str | Path) -> Scenario:
    path = Path(path).resolve()
    data = load_yaml(path)
    if not isinstance(data, dict):
        raise SpecError([("", "a scenario must be a mapping")])
    try:
        scenario = Scenario.model_validate(data)
    except ValidationError as e:
        raise SpecError([(".".join(map(str, err["loc"])), err["msg"]) for err in e.errors()]) from None
    # Paths in a scenario are relative to the scenario file, or to the working folder.
    def resolve(p: Path) -> Path:
        if p.is_absolute():
            return p
        beside = path.parent / p
        return beside if beside.exists() else Path.cwd() / p

    turns = [t.model_copy(update={"audio": resolve(t.audio)}) if t.audio else t for t in scenario.turns]
    return scenario.model_copy(update={"agent": resolve(scenario.agent), "turns": turns})

"""A persona per language: Whisper hears the caller's language, the agent answers in it, with
its persona's prompt and voice, keeping the conversation; every turn records the language."""

from __future__ import annotations

import io
import subprocess
from collections.abc import AsyncGenerator

import pytest
import soundfile as sf
from pipecat.frames.frames import Frame, TranscriptionFrame

from tests.fakes.openai_chat import FakeOpenAIChat, Reply
from tests.fakes.scripted import ScriptedSTT
from tests.fakes.twilio_loopback import serve
from tests.orchestration.kit import AGENTS, Voice, agents_on
from voxline.audio import to_pcm16, write_wav
from voxline.errors import SpecError
from voxline.integrations.providers.local.whisper_language import choose
from voxline.integrations.providers.registry import build_llm
from voxline.orchestration.handoff import Team
from voxline.orchestration.languages import persona_spec
from voxline.orchestration.settings import LanguagePersona
from voxline.pipelines.builder import Services
from voxline.pipelines.scenario import Expect, Scenario, Turn
from voxline.pipelines.simulate import Simulation
from voxline.spec import AgentSpec, LLMBlock, PromptPart, TTSBlock, check_spec, load_spec, parse_spec

RECEPTION = AGENTS / "reception" / "agent.yaml"


def _espeak_wav(path, text: str, voice: str) -> None:
    wav = subprocess.run(["espeak-ng", "--stdout", "-v", voice, text], capture_output=True, check=True).stdout
    samples, rate = sf.read(io.BytesIO(wav), dtype="int16")
    write_wav(path, b"\0" * 16000 + to_pcm16(samples, rate, 16000), 16000)  # 0.5 s of silence first


def test_a_persona_is_the_agent_with_its_blocks_on_top():
    spec = load_spec(RECEPTION)
    es = persona_spec(spec, "es")
    assert (es.name, es.language, es.tts.voice, es.languages) == ("reception", "es", "es", {})
    assert es.system_prompt.startswith("Eres") and es.greeting == "¡Hola! Seguimos en español."
    assert (es.stt, es.llm, es.tools) == (spec.stt, spec.llm, spec.tools)


def test_languages_are_checked_with_their_field_paths():
    base = {"name": "a", "prompt": "x"}
    for languages, path in [({"es": {"tts": {"provider": 1}}}, "languages.es.tts.provider"),
                            ({"es": {"voice": "es"}}, "languages.es.voice"),
                            ({"en": {}}, "languages"), ({"Spanish": {}}, "languages")]:
        with pytest.raises(SpecError) as e:
            parse_spec({**base, "languages": languages})
        assert path in [p for p, _ in e.value.problems], e.value.problems


def test_voxline_check_reports_a_personas_blocks_at_their_paths(tmp_path):
    (tmp_path / "agent.yaml").write_text(
        "name: a\nprompt: hi\ntts: {provider: espeak}\n"
        "languages:\n  es: {prompt: hola, tts: {provider: nosuch}}\n  de: {tts: {provider: espeak, voice: de}}\n")
    _, problems = check_spec(tmp_path / "agent.yaml")
    assert [p for p, _ in problems] == ["languages.es.tts.provider"], problems


def test_only_a_confident_listed_language_switches():
    heard = {"es": 0.84, "it": 0.05, "en": 0.03}
    assert choose(heard, ["en", "es"], "en") == "es"
    assert choose({"es": 0.5, "en": 0.13}, ["en", "es"], "en") == "en"  # "sí, gracias": unsure
    assert choose({"pt": 0.9, "es": 0.05}, ["en", "es"], "en") == "en"  # not a language it speaks
    assert choose({"en": 0.2, "es": 0.7}, ["en", "es"], "es") == "es"


def _team(spec: AgentSpec, spoken: list[tuple[str, str]]) -> Team:
    def make(s: AgentSpec) -> Services:
        real = Services.from_spec(s)  # the real Whisper and llama.cpp; a voice that notes what it says
        return Services(stt=real.stt, llm=real.llm, tts=Voice(s.tts.voice or "en-us", spoken))

    return Team.build(spec, {spec.name: spec}, make)


@pytest.mark.models
async def test_a_spanish_caller_gets_the_spanish_persona_on_the_real_models(tmp_path):
    _espeak_wav(tmp_path / "hola.wav", "Hola, quisiera reservar una mesa para dos personas esta noche.", "es")
    spec = load_spec(RECEPTION)
    spoken: list[tuple[str, str]] = []
    scenario = Scenario(agent=RECEPTION, answer_timeout_secs=30, turns=[
        Turn(audio=tmp_path / "hola.wav", expect=Expect(agent="reception", language="es")),
    ])
    sim = Simulation(scenario, spec=spec, listen=False, session_kwargs={"team": _team(spec, spoken)})
    report = await sim.run()

    assert report.passed, (report.failures, sim.session.log.turns, spoken)
    turn = report.to_json()["turns"][0]  # what `voxline simulate --json` prints
    assert (turn["agent"], turn["language"]) == ("reception", "es")
    assert "mesa" in turn["agent_heard"].lower()  # decoded as Spanish, not forced into English
    # After the greeting, everything is said in the Spanish voice: the persona's greeting, then its answer.
    assert spoken[0] == ("en-us", "Luigi's, how can I help?")
    assert spoken[1] == ("es", "¡Hola! Seguimos en español.")
    assert len(spoken) > 2 and {v for v, _ in spoken[1:]} == {"es"}, spoken
    assert spoken[2][1].strip() and turn["agent_said"]
    # (A loaded machine may log an empty turn when the words come late: only spoken ones count.)
    turns = sim.session.log.turns
    assert turns[0].language == "en" and [t.language for t in turns if t.user_text] == ["es"]
    system = sim.session.context.get_messages()[0]["content"]
    assert system.startswith("Eres la recepcionista")
    assert any("mesa" in str(m.get("content")).lower() for m in sim.session.context.get_messages()
               if m["role"] == "user")


class LabelledSTT(ScriptedSTT):
    """Scripted words, each labelled with the language an STT would detect."""

    def __init__(self, script: list[tuple[str, str]]):
        super().__init__([text for text, _ in script])
        self.languages = [language for _, language in script]

    async def run_stt(self, audio: bytes) -> AsyncGenerator[Frame | None, None]:
        language = self.languages.pop(0) if self.languages else "en"
        async for frame in super().run_stt(audio):
            if isinstance(frame, TranscriptionFrame):
                frame.language = language  # type: ignore[assignment]
            yield frame


async def test_the_persona_follows_the_caller_into_spanish_and_back(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    fake = FakeOpenAIChat(replies=[Reply(text="We open at noon."), Reply(text="Cerramos a las once."),
                                   Reply(text="You're welcome.")])
    script = [("When do you open?", "en"), ("¿Y a qué hora cierran?", "es"), ("Thank you very much", "en")]
    stt, spoken = LabelledSTT(script), []
    async with serve(fake.app()) as url:
        spec = load_spec(RECEPTION).model_copy(update={"llm": LLMBlock(
            provider="openai_compatible", base_url=f"{url}/v1", model="fake-model")})
        team = Team.build(spec, {spec.name: spec}, lambda s: Services(
            stt=stt, llm=build_llm(s.llm, max_tool_calls_per_turn=3), tts=Voice(s.tts.voice or "en-us", spoken)))
        scenario = Scenario(agent=RECEPTION, answer_timeout_secs=20, turns=[
            Turn(say=text, expect=Expect(language=language)) for text, language in script])
        sim = Simulation(scenario, spec=spec, listen=False, session_kwargs={"team": team})
        report = await sim.run()

    assert report.passed, report.failures
    systems = [r["messages"][0]["content"] for r in fake.requests]
    assert systems[0].startswith("You are") and systems[1].startswith("Eres") and systems[2].startswith("You are")
    assert "responde solo en español" in systems[1] and "answer in English only" in systems[2]
    said = [m.get("content") for m in fake.requests[2]["messages"]]
    assert "When do you open?" in said and "¿Y a qué hora cierran?" in said  # the conversation kept
    assert ("es", "¡Hola! Seguimos en español.") in spoken and ("es", "Cerramos a las once.") in spoken
    assert ("en-us", "You're welcome.") in spoken and ("en-us", "Cerramos a las once.") not in spoken
    assert [t.language for t in sim.session.log.turns] == ["en", "en", "es", "en"]


async def test_a_spanish_caller_handed_to_bookings_gets_bookings_spanish_persona(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    fake = FakeOpenAIChat(replies=[
        Reply(tool="transfer_to_bookings"),  # the front desk's Spanish persona
        Reply(text="Reservado."),  # bookings' Spanish persona
    ])
    spoken: list[tuple[str, str]] = []
    stt = LabelledSTT([("Quiero reservar una mesa", "es")])
    async with serve(fake.app()) as url:
        agents = agents_on(url, "front-desk", "bookings")
        for name, voice in (("front-desk", "es"), ("bookings", "es-419")):
            agents[name] = agents[name].model_copy(update={"languages": {"es": LanguagePersona(
                prompt=[PromptPart(text=f"Eres {name}.")], tts=TTSBlock(provider="espeak", voice=voice))}})
        team = Team.build(agents["front-desk"], agents, lambda s: Services(
            stt=stt, llm=build_llm(s.llm, max_tool_calls_per_turn=3), tts=Voice(s.tts.voice or "en-us", spoken)))
        scenario = Scenario(agent=AGENTS / "front-desk" / "agent.yaml", answer_timeout_secs=20, turns=[
            Turn(say="I want to book a table", expect=Expect(agent="bookings", language="es"))])
        sim = Simulation(scenario, spec=agents["front-desk"], listen=False, session_kwargs={"team": team})
        report = await sim.run()

    assert report.passed, report.failures
    systems = [r["messages"][0]["content"] for r in fake.requests]
    assert systems[0].startswith("Eres front-desk.") and systems[1].startswith("Eres bookings.")
    assert ("es-419", "Reservado.") in spoken and team.current == "bookings:es"


def test_a_personas_own_models_are_preloaded_with_the_agents():
    from voxline.integrations.providers.local.shared import model_needs

    spec = parse_spec({"name": "a", "prompt": "x", "tts": {"provider": "espeak"}, "languages": {
        "es": {"llm": {"provider": "llama", "model": "qwen2.5-coder-1.5b-instruct"}}}})
    labels = [need.label for need in model_needs([spec])]
    assert "qwen2.5-coder-0.5b-instruct" in labels and "qwen2.5-coder-1.5b-instruct" in labels
    assert labels.count("whisper-base") == 1  # the persona hears with the agent's Whisper

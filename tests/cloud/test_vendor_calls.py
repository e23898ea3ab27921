"""Each cloud vendor path end to end: a caller's turn in, the agent's audio out, through
a real call session on the vendors' fakes; the stored turn names the providers and
models that served it, its usage and what it cost (`voxline calls show`)."""

from __future__ import annotations

import pytest

pytest.importorskip("openai", reason="needs the openai extra")
pytest.importorskip("anthropic", reason="needs the anthropic extra")
pytest.importorskip("deepgram", reason="needs the deepgram extra")

from tests.cloud.kit import ANSWER, KEYS, SAID, VOICE, Vendors, agent, run_call  # noqa: E402
from voxline import pricing  # noqa: E402


@pytest.fixture(autouse=True)
def _keys(monkeypatch):
    for name, value in KEYS.items():
        monkeypatch.setenv(name, value)
    pricing._load.cache_clear()


# Each sentence is synthesized (and billed) on its own, without the space between.
CHARS = sum(len(s) for s in ("We open at noon.", "The kitchen closes at ten."))


def _priced(turn: dict) -> float:
    usd, unpriced = pricing.cost(turn["usage"], turn["providers"])
    assert unpriced == [], unpriced
    return usd


async def test_deepgram_openai_elevenlabs(tmp_path):
    async with Vendors() as v:
        spec = agent(stt=v.block("deepgram"), llm=v.block("openai", model="gpt-4.1-mini"),
                     tts=v.block("elevenlabs"), greeting="Hello, front desk.")
        call = await run_call(spec, [SAID], db=tmp_path / "calls.db")
        listen, chat = v.deepgram.sessions[0], v.openai.chat_requests[0]
        socket = v.elevenlabs.sockets[0]

    report = call.report
    assert report.greeting_heard == "" and report.turns[0].agent_heard == SAID
    assert report.turns[0].agent_said == ANSWER  # played to the caller, every word once
    # What went over the wire: Deepgram's live socket with Finalize; a chat with a
    # real model name; ElevenLabs' multi-stream socket for the configured voice.
    assert "Finalize" in listen.controls and len(listen.audio) > 16000
    assert chat["model"] == "gpt-4.1-mini" and chat["messages"][-1] == {"role": "user", "content": SAID}
    assert socket.voice_id == VOICE and socket.request.query["output_format"] == "pcm_16000"

    greeting, answer = call.agent_turns
    assert greeting["text"] == "Hello, front desk."
    assert greeting["providers"]["tts"]["provider"] == "elevenlabs"
    assert answer["text"] == ANSWER
    served = {stage: (p["provider"], p["model"]) for stage, p in answer["providers"].items()}
    assert served == {"stt": ("deepgram", "nova-3-general"), "llm": ("openai", "gpt-4.1-mini"),
                      "tts": ("elevenlabs", "eleven_flash_v2_5")}
    usage = answer["usage"]
    assert usage["stt_audio_secs"] > 0.5
    assert (usage["llm_input_tokens"], usage["llm_output_tokens"]) == (40, len(ANSWER.split()))
    assert usage["tts_characters"] == CHARS
    assert answer["cost_usd"] == pytest.approx(_priced(answer), abs=1e-6) and answer["cost_usd"] > 0
    assert call.show["cost_usd"] == pytest.approx(greeting["cost_usd"] + answer["cost_usd"], abs=1e-6)
    assert "llm=openai/gpt-4.1-mini" in call.text and "tts=elevenlabs/eleven_flash_v2_5" in call.text


async def test_openai_stt_anthropic_openai_tts(tmp_path):
    async with Vendors() as v:
        spec = agent(stt=v.block("openai", model="gpt-4o-transcribe"), llm=v.block("anthropic"),
                     tts=v.block("openai", voice="nova"))
        call = await run_call(spec, [SAID], db=tmp_path / "calls.db")
        upload = v.openai.of("audio/transcriptions")[0].body
        message = v.anthropic.bodies[0]
        speech = v.openai.of("audio/speech")[0].body

    assert call.report.turns[0].agent_heard == SAID
    assert call.report.turns[0].agent_said == ANSWER
    assert upload["model"] == "gpt-4o-transcribe" and upload["file"]["content_type"] == "audio/wav"
    assert isinstance(message["model"], str) and message["model"]  # the service's default, never null
    assert message["messages"][-1]["role"] == "user"
    assert (speech["voice"], speech["response_format"], speech["model"]) == ("nova", "pcm", "gpt-4o-mini-tts")

    (answer,) = call.agent_turns
    providers = answer["providers"]
    assert providers["stt"] == {"provider": "openai", "model": "gpt-4o-transcribe"}
    assert providers["llm"]["provider"] == "anthropic" and providers["llm"]["model"] == message["model"]
    assert providers["tts"] == {"provider": "openai", "model": "gpt-4o-mini-tts"}
    usage = answer["usage"]
    assert usage["stt_audio_secs"] > 0.5 and usage["llm_input_tokens"] == 40
    assert usage["tts_characters"] == CHARS
    assert answer["cost_usd"] == pytest.approx(_priced(answer), abs=1e-6) and answer["cost_usd"] > 0

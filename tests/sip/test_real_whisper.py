"""One SIP call transcribed by the real local Whisper: LibriVox speech from SIPp as G.711
RTP at 8 kHz, through ``Services.from_spec(spec, sample_rate=8000)``'s STT, stored as the
caller's turn. The LLM and TTS stay scripted (what they do is not under test here)."""

from __future__ import annotations

import pytest

from tests.phone.kit import AgentScript, ScriptedLLM, SpeechTTS
from tests.phone.live_kit import wer
from voxline.pipelines.builder import Services
from voxline.spec import AgentSpec

from .kit import CLIP_TEXT

pytestmark = pytest.mark.models

REAL_STT = {
    "stt": {"provider": "whisper"},
    "llm": {"provider": "openai_compatible", "base_url": "http://127.0.0.1:9/v1", "model": "unused"},
    "tts": {"provider": "espeak"},
    # One utterance, one segment: the test kit's 0.3 s VAD stop splits read speech at its
    # pauses, and Whisper does worse on fragments.
    "vad": {"start_secs": 0.15, "stop_secs": 0.8},
    "turn": {"strategy": "silence", "stop_secs": 0.3},
}


async def test_recorded_speech_transcribed_by_whisper(sip_rig) -> None:
    script = AgentScript()

    def services(spec: AgentSpec, sample_rate: int) -> Services:
        real = Services.from_spec(spec, sample_rate=sample_rate)
        return Services(stt=real.stt, llm=ScriptedLLM(script.reply), tts=SpeechTTS())

    rig = await sip_rig(script, services=services, spec=REAL_STT)
    run = await rig.sipp("call_speech", timeout=90)
    assert run.returncode == 0 and run.successful == 1, run.output
    record = await rig.only_call()
    said = [t.text for t in record.turns if t.role == "user"]
    assert len(said) == 1, said
    # Whisper base on this VAD segment hears "he was not an old supposed young man" (2 of 8
    # words wrong); on the whole received stream it is exact -- the media path is bit-exact.
    assert wer(CLIP_TEXT, said[0]) <= 0.25, said[0]

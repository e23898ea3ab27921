"""Per-agent call recording: consent said first, a two-channel WAV (caller left, agent right)."""

from __future__ import annotations

import asyncio
import wave

import numpy as np
import pytest

from .kit import AgentScript, silence, speech
from .test_call_e2e import correlates, wait_for

CONSENT = "This call may be recorded."
GREETING = "Hello, thanks for calling the restaurant."
QUESTION = "Can I book a table for two people tonight?"


@pytest.fixture
def script() -> AgentScript:
    return AgentScript(greeting=GREETING, transcripts=[QUESTION], reply=lambda _: "Yes.",
                       phone={"recording": {"enabled": True, "consent": CONSENT}})


def position(received: bytes, expected: bytes) -> int:
    """Sample offset where ``expected``'s first second best matches ``received``."""
    a = np.frombuffer(received, np.int16).astype(np.float32)
    b = np.frombuffer(expected, np.int16).astype(np.float32)[:8000]
    return int(np.argmax(np.correlate(a, b, mode="valid")))


async def test_consent_first_and_two_channel_wav(phone, tmp_path) -> None:
    call = await phone.incoming("CA000000000000000000000000000000c1")
    await call.connect()
    consent, greeting, question = speech(CONSENT), speech(GREETING), speech(QUESTION)
    # Consent and greeting play back to back, consent first.
    assert await wait_for(lambda: len(call.played) * 2 > len(consent) + len(greeting), 15)
    played = call.played_pcm()
    assert correlates(played, consent) > 0.9 and correlates(played, greeting) > 0.9
    assert position(played, consent) < position(played, greeting)

    call.say(question + silence(0.3))
    await call.wait_said()
    await asyncio.sleep(1.5)  # the answer plays
    await call.stop()
    record = await phone.records.wait_closed(call.call_sid, 10)
    assert record is not None
    said = [t.text for t in record.turns if t.role == "assistant"]
    assert said[0] == f"{CONSENT} {GREETING}", said  # consent first, in the greeting's turn

    path = tmp_path / "recordings" / f"{call.call_sid}.wav"
    assert await wait_for(path.exists, 5)
    await asyncio.sleep(0.5)  # the recorder closes the file as the pipeline ends
    with wave.open(str(path)) as w:
        assert (w.getnchannels(), w.getframerate(), w.getsampwidth()) == (2, 8000, 2)
        stereo = np.frombuffer(w.readframes(w.getnframes()), np.int16).reshape(-1, 2)
    caller, agent = stereo[:, 0].copy().tobytes(), stereo[:, 1].copy().tobytes()
    # The caller's words are on the left channel only; the agent's on the right only.
    assert correlates(caller, question) > 0.8
    assert correlates(agent, consent) > 0.9 and correlates(agent, greeting) > 0.9
    assert correlates(agent, question) < 0.5 and correlates(caller, consent) < 0.5
    assert position(agent, consent) < position(agent, greeting)

"""Pipecat's DeepgramSTTService (through deepgram-sdk's listen.v1 websocket client)
against the fake Deepgram: real speech in, TranscriptionFrames out."""

from __future__ import annotations

import pytest

pytest.importorskip("deepgram", reason="needs the deepgram extra")

from pipecat.frames.frames import (  # noqa: E402
    ErrorFrame,
    InterimTranscriptionFrame,
    TranscriptionFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.services.deepgram.stt import DeepgramSTTService  # noqa: E402

from tests.fakes.deepgram import FakeDeepgram  # noqa: E402
from tests.vendors.harness import GO_FORWARD_TEXT, audio_frames, run_pipeline, speech_16k  # noqa: E402


def stt(fake: FakeDeepgram, key: str = "dg-test-key", **kwargs) -> DeepgramSTTService:
    return DeepgramSTTService(api_key=key, base_url=fake.url, **kwargs)


async def test_a_turn_is_transcribed_on_finalize():
    pcm = speech_16k()
    async with FakeDeepgram([GO_FORWARD_TEXT], api_key="dg-test-key") as fake:
        async with run_pipeline(stt(fake)) as run:
            await run.send(VADUserStartedSpeakingFrame(), *audio_frames(pcm))
            await fake.wait_until(lambda: len(fake.sessions[-1].audio) >= len(pcm))
            await run.send(VADUserStoppedSpeakingFrame())
            final = await run.down.wait_for(TranscriptionFrame)
        session = fake.sessions[0]

    assert final.text == GO_FORWARD_TEXT
    assert final.result.from_finalize is True  # the SDK-parsed Results message rides along
    interims = [f.text for f in run.down.of(InterimTranscriptionFrame)]
    assert interims and GO_FORWARD_TEXT.startswith(interims[0])
    # What Pipecat asked Deepgram for, and how it authenticated.
    assert session.request.headers["authorization"] == "Token dg-test-key"
    q = session.query
    assert (q["model"], q["language"], q["encoding"], q["sample_rate"], q["channels"]) == \
        ("nova-3-general", "en", "linear16", "16000", "1")
    assert q["interim_results"] == "true" and q["punctuate"] == "true"
    assert bytes(session.audio[:len(pcm)]) == pcm  # the audio arrived unchanged, as binary frames
    # Finalize on the VAD stop, CloseStream when the pipeline ended; Metadata answers CloseStream.
    assert session.controls[:1] == ["Finalize"] and session.controls[-1] == "CloseStream"
    assert session.sent[-1]["type"] == "Metadata"


async def test_endpointing_final_without_vad():
    """Without VAD, Pipecat relies on Deepgram's own is_final results."""
    pcm = speech_16k()
    async with FakeDeepgram(["go forward", "ten meters"], final_after_ms=1000, interim_every_ms=None) as fake:
        async with run_pipeline(stt(fake, sample_rate=16000)) as run:
            await run.send(*audio_frames(pcm))
            await run.down.wait_for(TranscriptionFrame, lambda f: f.text == "ten meters")
        finals = fake.sessions[0].results(final=True)

    assert [f.text for f in run.down.of(TranscriptionFrame)] == ["go forward", "ten meters"]
    assert [m["speech_final"] for m in finals[:2]] == [True, True]
    assert finals[1]["start"] == pytest.approx(finals[0]["duration"], abs=0.03)
    assert "Finalize" not in fake.sessions[0].controls


async def test_keepalive_while_idle_then_a_server_error_close():
    """Pipecat keeps the socket open with a KeepAlive text message every 5 s; a close
    with Deepgram's error code (1011, NET-0001) is reported as an error."""
    async with FakeDeepgram() as fake:
        async with run_pipeline(stt(fake)) as run:
            await fake.wait_until(lambda: "KeepAlive" in fake.sessions[0].controls, timeout=8)
            assert fake.sessions[0].sent == []  # KeepAlive gets no answer
            await fake.close_sessions(code=1011, reason="NET-0001")
            error = await run.up.wait_for(ErrorFrame)
    assert fake.sessions[0].close_code == 1011
    assert "1011" in error.error or "NET-0001" in error.error


async def test_rejected_key_is_a_permanent_error():
    async with FakeDeepgram(api_key="right-key") as fake:
        async with run_pipeline(stt(fake, key="wrong-key")) as run:
            error = await run.up.wait_for(ErrorFrame)
    assert "401" in error.error
    assert len(fake.sessions) == 1  # a 4xx at the handshake is not retried


async def test_reconnects_after_the_server_drops_mid_stream():
    """close_mid_stream: the first Results goes out, then the TCP connection is gone."""
    pcm = speech_16k()
    async with FakeDeepgram([GO_FORWARD_TEXT, GO_FORWARD_TEXT], interim_every_ms=200) as fake:
        fake.faults.close_mid_stream = True
        async with run_pipeline(stt(fake)) as run:
            await run.send(*audio_frames(pcm))
            await fake.wait_until(lambda: len(fake.sessions) >= 2, timeout=15)
            fake.faults.close_mid_stream = False
            await run.send(VADUserStartedSpeakingFrame(), *audio_frames(pcm))
            await fake.wait_until(lambda: len(fake.sessions[-1].audio) >= len(pcm))
            await run.send(VADUserStoppedSpeakingFrame())
            final = await run.down.wait_for(TranscriptionFrame)
    assert len(fake.sessions[0].sent) == 1 and fake.sessions[0].close_code != 1000
    assert final.text == GO_FORWARD_TEXT
    assert run.up.of(ErrorFrame)  # the drop was reported, then recovered from

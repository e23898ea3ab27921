"""Pipecat's ElevenLabs services against the fake ElevenLabs: text in, PCM out."""

from __future__ import annotations

import base64
import json
import time

import aiohttp
import websockets
from pipecat.frames.frames import ErrorFrame, TTSAudioRawFrame, TTSSpeakFrame, TTSStoppedFrame, TTSTextFrame
from pipecat.services.elevenlabs.tts import ElevenLabsHttpTTSService, ElevenLabsTTSService

from tests.fakes.elevenlabs import FakeElevenLabs
from tests.vendors.harness import run_pipeline

VOICE = "21m00Tcm4TlvDq8ikWAM"
SAY = "Hello there. How can I help?"


def audio_of(frames: list[TTSAudioRawFrame]) -> bytes:
    return b"".join(f.audio for f in frames)


async def test_websocket_turn_speaks_the_text():
    async with FakeElevenLabs(api_key="xi-test") as fake:
        tts = ElevenLabsTTSService(api_key="xi-test", url=fake.ws_url,
                                   settings=ElevenLabsTTSService.Settings(voice=VOICE, stability=0.4))
        async with run_pipeline(tts, audio_out=16000) as run:
            await run.send(TTSSpeakFrame(SAY))
            stopped = await run.down.wait_for(TTSStoppedFrame)
        sock = fake.sockets[0]

    ctx = stopped.context_id
    frames = [f for f in run.down.of(TTSAudioRawFrame) if f.context_id == ctx]
    assert audio_of(frames) == bytes(sock.audio[ctx]) and len(frames) > 1  # streamed in chunks
    assert {(f.sample_rate, f.num_channels) for f in frames} == {(16000, 1)}
    assert sock.texts[ctx].strip() == SAY
    # The socket Pipecat opened: multi-context, PCM at the pipeline's output rate.
    assert sock.multi and sock.voice_id == VOICE
    assert sock.request.headers["xi-api-key"] == "xi-test"
    q = sock.request.query
    assert (q["model_id"], q["output_format"], q["auto_mode"]) == ("eleven_flash_v2_5", "pcm_16000", "true")
    assert sock.voice_settings[ctx]["stability"] == 0.4
    # Context lifecycle: init " ", text, flush, close_context (then close_socket at the end).
    kinds = [next(k for k in ("close_socket", "close_context", "flush", "text") if k in m)
             for m in sock.messages if m.get("context_id") == ctx or "close_socket" in m]
    assert kinds[0] == "text" and kinds[-3:] == ["flush", "close_context", "close_socket"]
    assert sock.closed_contexts == [ctx]
    # Word timestamps from the alignment become TTSTextFrames.
    assert " ".join(f.text for f in run.down.of(TTSTextFrame)) == SAY


async def test_websocket_output_rate_follows_the_pipeline():
    async with FakeElevenLabs() as fake:
        tts = ElevenLabsTTSService(api_key="k", url=fake.ws_url, settings=ElevenLabsTTSService.Settings(voice=VOICE))
        async with run_pipeline(tts, audio_out=24000) as run:
            await run.send(TTSSpeakFrame("Okay."))
            await run.down.wait_for(TTSStoppedFrame)
    assert fake.sockets[0].request.query["output_format"] == "pcm_24000"
    assert len(audio_of(run.down.of(TTSAudioRawFrame))) == sum(len(a) for a in fake.sockets[0].audio.values())


async def test_websocket_rejected_key_reports_an_error():
    async with FakeElevenLabs(api_key="right") as fake:
        tts = ElevenLabsTTSService(api_key="wrong", url=fake.ws_url,
                                   settings=ElevenLabsTTSService.Settings(voice=VOICE))
        async with run_pipeline(tts) as run:
            error = await run.up.wait_for(ErrorFrame)
    assert "401" in error.error


async def test_http_stream_with_timestamps():
    async with FakeElevenLabs(api_key="xi-test") as fake, aiohttp.ClientSession() as session:
        tts = ElevenLabsHttpTTSService(api_key="xi-test", aiohttp_session=session, base_url=fake.url,
                                       settings=ElevenLabsHttpTTSService.Settings(voice=VOICE))
        async with run_pipeline(tts, audio_out=16000) as run:
            await run.send(TTSSpeakFrame(SAY))
            await run.down.wait_for(TTSStoppedFrame)
        request = fake.requests[0]

    assert request.path == f"/v1/text-to-speech/{VOICE}/stream/with-timestamps"
    assert request.query["output_format"] == "pcm_16000"
    assert request.headers["xi-api-key"] == "xi-test"
    assert (request.body["text"], request.body["model_id"]) == (SAY, "eleven_flash_v2_5")
    assert audio_of(run.down.of(TTSAudioRawFrame)) == fake.http_audio(SAY, "pcm_16000")
    assert " ".join(f.text for f in run.down.of(TTSTextFrame)) == SAY


async def test_http_stream_endpoint_and_faults():
    """The plain /stream endpoint (raw audio), and the knobs failover tests use."""
    async with FakeElevenLabs() as fake, aiohttp.ClientSession() as session:
        url = f"{fake.url}/v1/text-to-speech/{VOICE}/stream?output_format=ulaw_8000"
        body = {"text": SAY, "model_id": "eleven_flash_v2_5"}
        async with session.post(url, json=body, headers={"xi-api-key": "k"}) as r:
            assert (r.status, r.headers["Content-Type"]) == (200, "audio/basic")
            assert await r.read() == fake.http_audio(SAY, "ulaw_8000")
        fake.faults.status, fake.faults.times = 429, 1
        async with session.post(url, json=body, headers={"xi-api-key": "k"}) as r:
            assert r.status == 429
        fake.faults.first_byte_delay = 0.3
        started = time.monotonic()
        async with session.post(url, json=body, headers={"xi-api-key": "k"}) as r:
            assert r.status == 200 and time.monotonic() - started >= 0.3
        fake.faults.first_byte_delay = 0.0
        fake.faults.close_mid_stream = True
        async with session.post(url, json=body, headers={"xi-api-key": "k"}) as r:
            assert r.status == 200
            try:
                got = await r.read()
            except aiohttp.ClientPayloadError:
                got = None
            assert got != fake.http_audio(SAY, "ulaw_8000")  # cut short


async def test_single_stream_input_protocol():
    """stream-input (no contexts), spoken by a plain websocket client: BOS, text, EOS."""
    async with FakeElevenLabs() as fake:
        url = f"{fake.ws_url}/v1/text-to-speech/{VOICE}/stream-input?model_id=eleven_flash_v2_5&output_format=pcm_8000"
        async with websockets.connect(url, additional_headers={"xi-api-key": "k"}) as ws:
            for message in ({"text": " ", "voice_settings": {"stability": 0.5}}, {"text": "Hi there. "}, {"text": ""}):
                await ws.send(json.dumps(message))
            replies = [json.loads(m) async for m in ws]  # the server closes after the final message
    assert replies[-1] == {"audio": None, "isFinal": True, "normalizedAlignment": None, "alignment": None}
    audio = b"".join(base64.b64decode(m["audio"]) for m in replies[:-1])
    assert audio == fake.http_audio("Hi there. ", "pcm_8000")
    assert "".join(c for m in replies[:-1] for c in m["alignment"]["chars"]) == "Hi there. "

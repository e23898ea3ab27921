"""Phone calls through the real server on the real local models.

``create_app`` under uvicorn on 127.0.0.1 with ``services=None``: each call's STT, TTS
and VAD are built from the agent's spec on the models this process loaded at startup
(Whisper base, Piper, Silero). The LLM is pipecat's OpenAI service speaking to a fake
OpenAI server on loopback. Callers are Twilio-like: signed webhook, media stream with
the TwiML's per-call token, recorded human speech (LibriVox, 8 kHz μ-law) in real time.
"""

from __future__ import annotations

import asyncio
import gc
import statistics
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi import FastAPI

from tests.fakes.twilio_loopback import serve
from tests.fakes.twilio_media import FakeTwilioCall
from tests.fakes.twilio_rest import FakeTwilioRest
from tests.services import service_unavailable
from voxline.integrations.providers.local import shared
from voxline.pipelines.call_records import CallRecords
from voxline.server import create_app
from voxline.transports.twilio import RetryOptions, TwilioConfig, TwilioRestClient

from . import live_kit as kit

pytestmark = pytest.mark.models


@dataclass
class RealPhone:
    base: str
    rest_fake: FakeTwilioRest
    app: FastAPI

    @property
    def records(self) -> CallRecords:
        records = self.app.state.host.records
        assert records is not None
        return records


@pytest.fixture
def greeting() -> str:
    return kit.GREETING


@pytest.fixture
async def real_phone(tmp_path: Path, greeting: str) -> AsyncIterator[RealPhone]:
    if not kit.LIBRIVOX.is_dir():
        service_unavailable("pocketsphinx-testdata is not installed (real recorded speech)")
    llm = kit.fake_llm()
    rest_fake = FakeTwilioRest(kit.ACCOUNT, kit.TOKEN)
    async with serve(llm.app()) as llm_base, serve(rest_fake.app) as rest_base:
        agents = kit.write_real_agents(tmp_path / "agents", llm_base + "/v1", greeting=greeting)
        rest = TwilioRestClient(kit.ACCOUNT, kit.TOKEN, base_url=rest_base,
                                retry=RetryOptions(attempts=2, base_delay_secs=0.01))
        app = create_app(agents, twilio=TwilioConfig(account_sid=kit.ACCOUNT, auth_token=kit.TOKEN,
                                                     api_base_url=rest_base),
                         api_key="test-api-key", services=None, rest=rest, preload=True,
                         recording_dir=tmp_path / "recordings", database_url=str(tmp_path / "voxline.db"))
        async with serve(app) as base:  # the lifespan has loaded the models (off the loop)
            yield RealPhone(base, rest_fake, app)
        await rest.aclose()


async def ask(call: FakeTwilioCall, pcm: bytes, timeout: float = 30) -> None:
    """Say ``pcm`` once the agent is quiet; return when its answer has been heard out."""
    assert await kit.until(lambda: kit._quiet_for(call, 0.3), timeout), "the agent kept talking"
    before = len(call.media_arrivals)
    call.say(pcm + kit.silence(kit.PAD_SECS))
    await call.wait_said(timeout)
    assert await kit.until(lambda: len(call.media_arrivals) > before, timeout), "no answer"
    assert await kit.until(lambda: kit._quiet_for(call, 0.3), timeout), "the answer did not end"


async def test_caller_turns_transcribed_from_8khz_speech(real_phone: RealPhone, greeting: str) -> None:
    """Whisper hears 8 kHz phone audio resampled to its 16 kHz (read at the wrong rate,
    this speech came out at a WER of 0.68). The greeting was synthesized at startup:
    the first call is served from the cache, not by Piper."""
    cache = real_phone.app.state.host.greetings
    assert cache.get("frontdesk", greeting) is not None and cache.hits == 0
    misses = cache.misses  # the startup synthesis
    clips = kit.librivox_clips()
    call = await kit.ring(real_phone.rest_fake, real_phone.base, kit.new_sid())
    await call.connect()
    try:
        assert await kit.until(lambda: call.first_media_at is not None, 15), "no greeting"
        for clip in clips:
            await ask(call, clip.pcm)
    finally:
        await call.stop()
    await real_phone.records.wait_closed(call.call_sid, 15)
    await real_phone.app.state.host.settle()
    assert cache.hits == 1 and cache.misses == misses
    record = await real_phone.records.get(call.call_sid)
    assert record is not None
    heard = [t.text for t in record.turns if t.role == "user"]
    reference = " ".join(c.text for c in clips)
    error = kit.wer(reference, " ".join(heard))
    per_clip = [round(kit.wer(c.text, h), 2) for c, h in zip(clips, heard, strict=False)]
    assert error <= 0.15, (error, per_clip, heard)
    assert len(heard) == len(clips), heard  # one caller turn per sentence


LANES = 4  # calls at a time
WARMUP_ROUNDS, MEASURED_ROUNDS = 2, 3  # 8 calls of warm-up, then 12 measured


@pytest.mark.parametrize("greeting", ["Hello."])
async def test_rss_flat_over_many_calls(real_phone: RealPhone) -> None:
    """20 short calls (greeting, one question, hang-up), four at a time, on one server.

    After two warm-up rounds (the executor threads and their allocator arenas,
    onnxruntime's and CTranslate2's buffers, the greeting cache reach their working size:
    on a loaded machine the second round of five concurrent calls still added ~39 MB),
    RSS must not grow by 5 MB in a typical round of four calls (the median of the three
    rounds' growth), nor by 60 MB over the 12 calls. A call that kept its pipeline,
    context or services (~1.5 MB and more with its audio buffers) would add 6 MB
    every round; one that loaded Whisper (~150 MB) or a Piper voice (~60 MB) would add
    far more, every round. Measured after the warm-up: 1–7 MB over 20 calls, with now
    and then one allocator step in one round (44 MB once, on a loaded machine); the
    bounded list of finished calls' results (``CallLimits.results_kept``) holds a few
    KB a call.
    """
    question = kit.clip("0880").pcm
    host = real_phone.app.state.host
    samples: list[float] = []
    n = 0
    for round_ in range(WARMUP_ROUNDS + MEASURED_ROUNDS):
        timings = await asyncio.gather(*(
            kit.question_call(real_phone.rest_fake, real_phone.base, question,
                              from_=f"+1555300{n + i:04d}", timeout=60, greeting_quiet=0.3)
            for i in range(LANES)))
        n += LANES
        assert all(t.ok for t in timings), [t.error for t in timings if not t.ok]
        for t in timings:
            await real_phone.records.wait_closed(t.sid, 15)
        await host.settle()
        assert await kit.until(lambda: not host.calls, 10), list(host.calls)
        if round_ >= WARMUP_ROUNDS - 1:
            gc.collect()
            samples.append(kit.rss_mb())
    print("RSS samples", [round(x, 1) for x in samples])
    # A call that keeps what it took grows RSS every round; the allocator grows it in
    # steps, now and then (a 44 MB step in one round was seen on a loaded machine). So
    # the typical round must stay flat, and no step may reach a model's size.
    steps = [b - a for a, b in zip(samples, samples[1:], strict=False)]
    typical = statistics.median(steps)
    assert typical < 5, f"RSS grew {typical:.1f} MB in a typical round of {LANES} calls: {samples}"
    growth = samples[-1] - samples[0]
    assert growth < 60, f"RSS grew {growth:.1f} MB over {MEASURED_ROUNDS * LANES} calls: {samples}"


async def test_event_loop_keeps_up_while_calls_start(real_phone: RealPhone) -> None:
    """Eight calls start at once and each asks a question: no model is loaded for them,
    and the event loop (server and callers share it here) is never blocked by work of
    its own for long.

    A ticker wakes every 10 ms and notes how late it is (lag) and how much CPU the loop's
    thread spent since the last tick. That CPU time is what the loop itself was busy with
    (a model loaded on it, a per-call TLS context, ...): it is held under 250 ms. The lag
    also counts the time the OS gave the thread to others, which on a shared 2-core
    machine can reach a second now and then whatever the server does, so for lag the
    bound is on its 99th percentile.
    """
    question = kit.clip("0930").pcm
    # Warm-up: the greeting cache holds the greeting, as on a server that took a call.
    warm = await kit.question_call(real_phone.rest_fake, real_phone.base, question)
    assert warm.ok, warm.error
    loads = dict(shared.LOADS)
    lags: list[float] = []
    busy: list[float] = []

    async def ticker() -> None:
        while True:
            t0, c0 = time.monotonic(), time.thread_time()
            await asyncio.sleep(0.01)
            lags.append(time.monotonic() - t0 - 0.01)
            busy.append(time.thread_time() - c0)

    task = asyncio.create_task(ticker())
    try:
        timings = await asyncio.gather(*(
            kit.question_call(real_phone.rest_fake, real_phone.base, question, from_=f"+1555400{i:04d}",
                              timeout=60)
            for i in range(8)))
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert all(t.ok for t in timings), await _what_failed_calls_heard(real_phone, timings)
    assert dict(shared.LOADS) == loads, "a call loaded a model"
    p99 = sorted(lags)[-len(lags) // 100 - 1]
    print(f"loop lag max {max(lags) * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms; "
          f"loop CPU between ticks max {max(busy) * 1000:.0f} ms")
    assert max(busy) < 0.25, f"the event loop was busy {max(busy) * 1000:.0f} ms without a break"
    assert p99 < 0.15, f"event loop lag p99 {p99 * 1000:.0f} ms (max {max(lags) * 1000:.0f} ms)"
    assert max(t.greeting_ms or 0 for t in timings) < 3000, [t.greeting_ms for t in timings]


async def _what_failed_calls_heard(phone: RealPhone, timings: list[kit.CallTiming]) -> list[object]:
    """Each failed call's error with the turns its record holds: where it went wrong."""
    seen: list[object] = []
    for t in timings:
        if not t.ok:
            record = await phone.records.get(t.sid)
            turns = [(turn.role, turn.text) for turn in record.turns] if record else None
            seen.append((t.error, t.talked_over, turns))
    return seen

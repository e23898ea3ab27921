"""A far end that stops reading: bounded queues, counted drops, no unbounded memory growth."""

from __future__ import annotations

import asyncio

import pytest

from .kit import AgentScript, silence, speech
from .test_call_e2e import wait_for

QUESTION = "When are you open?"
ANSWER = "We are open every day from nine in the morning until eleven at night."
MAX_UNPLAYED_SECS = 1.0


@pytest.fixture
def script() -> AgentScript:
    return AgentScript(transcripts=[QUESTION] * 5, reply=lambda _: ANSWER)


@pytest.fixture
def stream_options() -> dict:
    return {"max_unplayed_secs": MAX_UNPLAYED_SECS}


def rss_bytes() -> int:
    with open("/proc/self/status") as f:  # uvicorn serves the app in this process
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmRSS"))


async def test_stalled_reader_is_bounded_and_recovers(phone) -> None:
    question = speech(QUESTION) + silence(0.6)
    speech(ANSWER)  # synthesized before measuring memory
    call = await phone.incoming("CA000000000000000000000000000000a1")
    await call.connect()
    assert await wait_for(lambda: call.first_media_at is not None, 10)
    line = phone.app.state.host.calls[call.call_sid].incoming.line  # the TwilioCall
    rss0 = rss_bytes()

    call.stall()  # stops reading; keeps streaming the caller's audio in real time
    for _ in range(3):  # three questions, three answers the far end never takes
        call.say(question)
        await call.wait_said()
        await asyncio.sleep(0.8)
    stalled = line.stats()
    rss1 = rss_bytes()
    media_before_resume = len(call.events("media"))

    # Agent audio was dropped (counted) once the unplayed backlog reached the cap,
    # instead of queueing; caller audio still reached the pipeline, within its cap.
    assert stalled["audio_out_dropped"] > 0
    assert stalled["audio_out_backlog_peak_ms"] <= MAX_UNPLAYED_SECS * 1000 + 100
    assert stalled["audio_in_backlog_peak"] <= 100
    assert stalled["media_in"] > 100  # the server kept reading the caller all along
    assert rss1 - rss0 < 30 * 2**20, (rss1 - rss0) / 2**20

    # Reading again: the few buffered seconds arrive, marks are echoed, the backlog drains.
    call.resume()
    assert await wait_for(lambda: line.ledger.backlog_secs < 0.3, 10)
    assert len(call.events("media")) > media_before_resume
    await call.stop()
    record = await phone.records.wait_closed(call.call_sid, 10)
    assert record is not None and record.end_reason == "caller_hung_up"
    assert record.transport_stats["audio_out_dropped"] >= stalled["audio_out_dropped"]

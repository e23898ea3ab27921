"""End to end over real websockets: greeting, question, answer, barge-in, DTMF, end_call."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest

from voxline.audio import transcribe

from .kit import AgentScript, silence, speech

ANSWER = ("We are open every day from nine in the morning until eleven at night. | "
          "On weekends we also serve brunch from ten until three. | "
          "Reservations can be made by phone or on our website.")


def reply(text: str):
    if "DTMF: 1" in text:
        return ("end_call", {"goodbye": "Goodbye and thank you."})
    return ANSWER


@pytest.fixture
def script() -> AgentScript:
    return AgentScript(
        greeting="Hello, thanks for calling the restaurant.",
        transcripts=["When are you open?", "Stop, I have another question."],
        reply=reply,
    )


def correlates(received: bytes, expected: bytes) -> float:
    """Peak normalised cross-correlation: did the caller hear this speech?"""
    a = np.frombuffer(received, np.int16).astype(np.float32)
    b = np.frombuffer(expected, np.int16).astype(np.float32)[: 8000]  # its first second
    if len(a) < len(b):
        return 0.0
    corr = np.correlate(a, b, mode="valid")
    energy = np.sqrt(np.convolve(a * a, np.ones(len(b)), mode="valid")) * np.linalg.norm(b)
    return float(np.max(corr / np.maximum(energy, 1e-9)))


async def wait_for(predicate, timeout: float, step: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        await asyncio.sleep(step)
    return predicate()


async def test_inbound_call_end_to_end(phone) -> None:
    call = await phone.incoming(from_="+15557654321")
    await call.connect()
    # Greeting heard: the caller's playout contains the greeting's speech.
    assert await wait_for(lambda: len(call.played) > 8000 * 1.5, 10)
    greeting_pcm = speech("Hello, thanks for calling the restaurant.")
    await asyncio.sleep(1.5)
    assert correlates(call.played_pcm(), greeting_pcm) > 0.9
    assert call.first_media_at is not None and call.start_sent_at is not None

    # Caller asks; agent answers (real speech reaches the caller).
    await asyncio.sleep(1.0)
    call.say(speech("When are you open?") + silence(0.2))
    await call.wait_said()
    n_before = len(call.played)
    assert await wait_for(lambda: len(call.played) > n_before + 8000 * 2.5, 10)
    first_sentence = speech("We are open every day from nine in the morning until eleven at night.")
    assert correlates(call.played_pcm()[n_before * 2:], first_sentence) > 0.9
    # And transcribed as a person would hear it, through 8 kHz mu-law.
    heard = transcribe(call.played_pcm()[n_before * 2:], 8000).lower()
    assert "we are open" in heard and "morning" in heard, heard

    # Barge-in during the second sentence: clear arrives promptly.
    await asyncio.sleep(3.5)
    said_at = time.monotonic()
    call.say(speech("Stop, I have another question.") + silence(0.2))
    assert await wait_for(lambda: any(t > said_at for t in call.clears), 3)
    clear_at = next(t for t in call.clears if t > said_at)
    assert clear_at - said_at < 0.8  # VAD start (~0.15 s of speech) + pipeline
    await call.wait_said()
    await asyncio.sleep(1.5)

    # Keypad: "1" reaches the agent, which says goodbye and hangs up over REST.
    await call.send_dtmf("1")
    try:
        record = await phone.records.wait_closed(call.call_sid, 20)
    except TimeoutError:
        r = await phone.records.get(call.call_sid)
        raise AssertionError(f"not closed: {r}") from None
    await call.close()

    assert record is not None and record.end_reason == "agent_hung_up"
    # The hang-up went over REST, after the goodbye was played.
    fake = phone.rest_fake.calls[call.call_sid]
    assert {"Status": "completed"} in fake.updates
    goodbye = speech("Goodbye and thank you.")
    # (the call closes once its pipeline has ended: look at the last few seconds)
    assert correlates(call.played_pcm()[-len(goodbye) * 2 - 8000 * 2 * 3:], goodbye) > 0.9
    # The CallSession ran the call and recorded the tool call.
    assert await wait_for(lambda: call.call_sid in phone.results, 5)
    result = phone.results[call.call_sid]
    assert result.end_reason == "agent_hung_up"
    assert any(tc.name == "end_call" for turn in result.turns for tc in turn.tool_calls)
    # The call was recorded in the one call store, turn by turn, with its tool call:
    # what the caller said, and of the agent only what the caller heard.
    await phone.app.state.host.settle()
    stored = await phone.records.get(call.call_sid)
    assert stored is not None and stored.channel == "twilio" and stored.end_reason == "agent_hung_up"
    assert stored.status == "completed" and stored.transport_stats["media_in"] > 0
    texts = [(t.role, t.text, t.interrupted) for t in stored.turns]
    interrupted = [t for t in texts if t[0] == "assistant" and t[2]]
    assert interrupted, texts
    heard = interrupted[0][1]
    assert heard.startswith("We are open every day")
    assert "Reservations" not in heard  # the unplayed sentence is not in the transcript
    assert ("user", "When are you open?", False) in texts
    assert any(t[0] == "assistant" and "Goodbye and thank you." in t[1] for t in texts), texts
    assert any(t[0] == "user" and "1" in t[1] and "DTMF" in t[1] for t in texts), texts
    assert any(tc.name == "end_call" for tc in stored.tool_calls)


def transfer_reply(text: str):
    if "DTMF: 0" in text:
        return ("transfer_call", {"target": "front desk"})
    return "Sure."


async def test_keypad_transfer_and_cached_greeting(phone, script) -> None:
    script.reply = transfer_reply
    first = await phone.incoming("CA000000000000000000000000000000f1")
    await first.connect()
    assert await wait_for(lambda: phone.greetings.misses == 1 and len(first.played) > 8000, 10)
    await first.stop()
    await phone.records.wait_closed(first.call_sid, 10)

    # Second call: the greeting comes from the cache, and is the same speech.
    call = await phone.incoming("CA000000000000000000000000000000f2")
    await call.connect()
    assert await wait_for(lambda: len(call.played) > 8000 * 1.5, 10)
    assert phone.greetings.hits == 1
    await asyncio.sleep(1.0)
    assert correlates(call.played_pcm(), speech("Hello, thanks for calling.")) > 0.9

    heard_at_transfer: list[bytes] = []
    phone.rest_fake.on_update = lambda sid, params: heard_at_transfer.append(call.played_pcm())
    await call.send_dtmf("0")
    await call.send_dtmf("#")
    record = await phone.records.wait_closed(call.call_sid, 20)
    # Twilio now runs the <Dial>: the server ends our stream.
    assert await wait_for(call.closed.is_set, 10)
    await call.close()
    # The caller had heard the whole transfer message when the REST redirect was made.
    hold = speech("Please hold while I transfer your call.")
    assert len(heard_at_transfer) == 1
    assert correlates(heard_at_transfer[0][-len(hold) * 2 - 8000:], hold) > 0.9
    assert phone.results[call.call_sid].end_reason == "transferred"
    assert record is not None and record.end_reason == "transferred"
    assert record.transfer_to == "+15550002222"
    twiml = phone.rest_fake.calls[call.call_sid].updates[-1]["Twiml"]
    assert "<Dial" in twiml and "+15550002222" in twiml
    heard = [t.text for t in record.turns if t.role == "assistant"]
    assert any("Please hold while I transfer your call." in text for text in heard), heard

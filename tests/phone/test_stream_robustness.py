"""Serializer hardening, marks, dropped websockets and call isolation."""

from __future__ import annotations

import asyncio
import base64
import json

from pipecat.frames.frames import (
    InputAudioRawFrame,
    InputDTMFFrame,
    InterruptionFrame,
    OutputAudioRawFrame,
)
from pipecat.processors.frame_processor import FrameProcessorSetup

from tests.fakes.twilio_media import pcm_to_ulaw
from voxline.transports.twilio import MarkLedger, VoxlineTwilioSerializer

from .kit import AgentScript, silence, speech
from .test_call_e2e import wait_for


def media(seq: int, ulaw: bytes) -> str:
    return json.dumps({"event": "media", "sequenceNumber": str(seq), "streamSid": "MZ1",
                       "media": {"track": "inbound", "chunk": str(seq), "timestamp": "0",
                                 "payload": base64.b64encode(ulaw).decode()}})


async def make_serializer() -> VoxlineTwilioSerializer:
    s = VoxlineTwilioSerializer("MZ1", call_id="CA1", first_sequence=1, reorder_window=3,
                                sample_rate=8000)
    await s.setup(FrameProcessorSetup.__new__(FrameProcessorSetup))  # rate given explicitly
    return s


async def test_malformed_unknown_and_reorder() -> None:
    s = await make_serializer()
    a, b, c = (bytes([v]) * 160 for v in (0x10, 0x20, 0x30))
    assert await s.deserialize("{not json") is None
    assert await s.deserialize("[1,2]") is None
    assert await s.deserialize(json.dumps({"event": "party"})) is None
    assert await s.deserialize(media(3, b)) is None  # early: held for seq 2
    frame = await s.deserialize(media(2, a))
    assert isinstance(frame, InputAudioRawFrame) and len(frame.audio) == 2 * 320
    assert await s.deserialize(media(2, a)) is None  # duplicate / late
    dtmf = await s.deserialize(json.dumps({"event": "dtmf", "sequenceNumber": "4",
                                           "dtmf": {"track": "inbound_track", "digit": "7"}}))
    assert isinstance(dtmf, InputDTMFFrame) and dtmf.button.value == "7"
    assert isinstance(await s.deserialize(media(5, c)), InputAudioRawFrame)
    # A lost message (6) does not stall the stream beyond the window.
    outs = [await s.deserialize(media(n, a)) for n in (7, 8, 9, 10)]
    assert any(isinstance(o, InputAudioRawFrame) for o in outs)
    st = s.stats
    assert (st.malformed, st.unknown_events, st.late_dropped, st.gaps_skipped) == (2, 1, 1, 1)


async def test_hostile_messages_are_counted_not_raised() -> None:
    """Whatever shape a message has, the serializer drops it and counts it: one bad
    message must not end the receive loop (and with it the call)."""
    s = await make_serializer()
    hostile = [
        "[" * 50_000, '"just a string"', "null", b"\xff\xfe", "Infinity",
        json.dumps({"event": "mark", "mark": "m-1"}),
        json.dumps({"event": "mark", "mark": ["m-1"]}),
        json.dumps({"event": "dtmf", "dtmf": "5"}),
        json.dumps({"event": "dtmf", "dtmf": {"digit": ["5"]}}),
        json.dumps({"event": "media", "media": "AAAA"}),
        json.dumps({"event": "media", "media": {"payload": 5}}),
        json.dumps({"event": "media", "media": {"payload": ["AAAA"]}}),
        json.dumps({"event": "media", "media": {"track": ["inbound"], "payload": "AAAA"}}),
        '{"event": "media", "sequenceNumber": Infinity, "media": {"payload": "AAAA"}}',
        json.dumps({"event": "media", "sequenceNumber": 10**400, "media": {"payload": "AAAA"}}),
        json.dumps({"event": "media", "sequenceNumber": -5, "media": {"payload": "AAAA"}}),
        json.dumps({"event": ["media"]}),
        json.dumps({"event": "stop", "sequenceNumber": {"n": 1}, "stop": "now"}),
    ]
    for message in hostile:
        assert await s.deserialize(message) is None, message
    # (media whose sequenceNumber is no number is taken in arrival order; `stop` is a hang-up)
    assert s.stats.malformed + s.stats.unknown_events + s.stats.media_in == len(hostile) - 1, s.stats
    # The stream still works afterwards, in order.
    frames = [await s.deserialize(media(n, bytes([0x10]) * 160)) for n in range(2, 6)]
    assert any(isinstance(f, InputAudioRawFrame) for f in frames)
    assert s.stats.late_dropped == 0


async def test_marks_follow_audio_and_clear_retires_them() -> None:
    s = await make_serializer()
    out = await s.serialize(OutputAudioRawFrame(b"\x00\x01" * 160, 8000, 1))
    assert json.loads(out)["event"] == "media"
    mark = json.loads(s.take_mark())
    assert mark["event"] == "mark" and mark["streamSid"] == "MZ1"
    await s.serialize(OutputAudioRawFrame(b"\x00\x01" * 160, 8000, 1))
    second = json.loads(s.take_mark())["mark"]["name"]
    await s.deserialize(json.dumps({"event": "mark", "sequenceNumber": "2",
                                    "mark": {"name": mark["mark"]["name"]}}))
    assert abs(s.ledger.played_secs - 0.02) < 1e-9
    assert json.loads(await s.serialize(InterruptionFrame()))["event"] == "clear"
    await s.deserialize(json.dumps({"event": "mark", "sequenceNumber": "3", "mark": {"name": second}}))
    assert abs(s.ledger.played_secs - 0.02) < 1e-9  # cleared audio never counts as played
    assert s.ledger.stats.stale_echoes == 1 and s.ledger.idle


def test_ledger_context_positions() -> None:
    ledger = MarkLedger()
    ledger.audio_sent(1.0)
    ledger.begin_context("ctx")
    name = ledger.audio_sent(0.5)
    assert ledger.played_in_context("ctx") == 0.0
    ledger.echo(name)
    assert ledger.played_in_context("ctx") == 0.5


async def test_media_before_start_and_drop_closes_record_with_transcript(phone) -> None:
    call = await phone.incoming("CA000000000000000000000000000000d1")
    await call.connect(send_start=False)
    await call.send_json(call.media_message(pcm_to_ulaw(silence(0.02))))  # before start
    await call.send_start()
    greeting = speech(AgentScript().greeting)
    assert await wait_for(lambda: len(call.played) * 2 >= len(greeting), 15)  # the greeting played
    await asyncio.sleep(0.3)  # its last mark echoed
    await call.drop()
    record = await phone.records.wait_closed(call.call_sid, 10)
    assert (record.status, record.end_reason) == ("dropped", "dropped")
    assert record.turns and record.turns[0].role == "assistant"
    assert record.transport_stats["media_in"] > 0


async def test_two_concurrent_calls_do_not_share_state(phone, script) -> None:
    script.transcripts = ["When are you open?"]
    calls = [await phone.incoming(f"CA00000000000000000000000000000{n}e1",
                                  stream_sid=f"MZ00000000000000000000000000000{n}e1") for n in (1, 2)]
    for c in calls:
        await c.connect()
    await asyncio.sleep(2.5)
    calls[0].say(speech("When are you open?") + silence(0.3))  # only call 1 speaks
    await asyncio.sleep(3.5)
    for c in calls:
        await c.stop()
    r1 = await phone.records.wait_closed(calls[0].call_sid, 10)
    r2 = await phone.records.wait_closed(calls[1].call_sid, 10)
    assert [t.text for t in r1.turns if t.role == "user"] == ["When are you open?"]
    assert r2.turns and all(t.role == "assistant" for t in r2.turns)
    assert r1.end_reason == r2.end_reason == "caller_hung_up"
    # Each stream only ever saw its own streamSid.
    for c in calls:
        assert {r.message.get("streamSid") for r in c.received} == {c.stream_sid}


async def test_a_hostile_message_mid_call_does_not_end_it(phone, server_errors) -> None:
    call = await phone.incoming("CA000000000000000000000000000000b7")
    await call.connect()
    assert await wait_for(lambda: len(call.played) > 2000, 10)
    for raw in ("[" * 50_000, json.dumps({"event": "mark", "mark": "m-1"}),
                json.dumps({"event": "media", "media": {"payload": 5}}),
                '{"event": "media", "sequenceNumber": Infinity, "media": {"payload": ""}}'):
        await call.send_raw(raw)
    played = len(call.played)
    assert await wait_for(lambda: len(call.played) > played + 4000, 10)  # still talking
    live = phone.app.state.host.calls[call.call_sid]
    assert live.incoming.stats()["malformed"] >= 3
    await call.stop()
    record = await phone.records.wait_closed(call.call_sid, 10)
    assert record.end_reason == "caller_hung_up"
    assert server_errors == []

"""G.722 when the caller offers it: the answer, the codec both ways, and a SIPp call whose
wideband speech reaches the real local Whisper at 16 kHz."""

from __future__ import annotations

import asyncio
import itertools
import re
import uuid

import numpy as np
import pytest
from aiortp import RtpPacket
from aiosipua import serialize_sdp

from tests.phone.kit import AgentScript, ScriptedLLM, SpeechTTS
from tests.phone.live_kit import wer
from voxline.pipelines.builder import Services
from voxline.spec import AgentSpec
from voxline.transports.sip.codecs import G722Codec
from voxline.transports.sip.sdp import build_answer, build_offer, parse_offer

from .kit import CLIP_TEXT, NUMBER
from .peers import SDP, UdpPeer, header, request, status
from .test_real_whisper import REAL_STT


def _offer(formats: str, *extra: str) -> str:
    lines = ["v=0", "o=- 1 1 IN IP4 192.0.2.1", "s=-", "c=IN IP4 192.0.2.1", "t=0 0",
             f"m=audio 4000 RTP/AVP {formats}", *extra, "a=sendrecv"]
    return "\r\n".join(lines) + "\r\n"


def test_g722_is_chosen_when_offered() -> None:
    assert parse_offer(_offer("9 0 8", "a=rtpmap:9 G722/8000")).payload_type == 9
    assert parse_offer(_offer("0 8 9")).payload_type == 9  # static: no rtpmap needed, any position
    assert parse_offer(_offer("0 8")).payload_type == 0
    assert parse_offer(_offer("8 0")).payload_type == 8
    offer = parse_offer(_offer("9 101", "a=rtpmap:9 G722/16000", "a=rtpmap:101 telephone-event/8000"))
    assert (offer.payload_type, offer.audio_rate, offer.dtmf_payload_type) == (9, 16000, 101)
    answer = serialize_sdp(build_answer(offer, host="127.0.0.1", port=5000, session_id="1"))
    assert "m=audio 5000 RTP/AVP 9 101" in answer and "a=rtpmap:9 G722/8000" in answer  # RFC 3551's clock
    assert "RTP/AVP 9 0 8 101" in serialize_sdp(build_offer(host="127.0.0.1", port=5000, session_id="1"))


def test_g722_codec_round_trip() -> None:
    t = np.arange(16000) / 16000
    tone = (8000 * np.sin(2 * np.pi * 440 * t)).astype("<i2")
    encoder, decoder = G722Codec(), G722Codec()
    payloads = [encoder.encode(tone[i:i + 320].tobytes()) for i in range(0, 16000, 320)]
    assert {len(p) for p in payloads} == {160}
    decoded = np.frombuffer(b"".join(decoder.decode(p) for p in payloads), "<i2").astype(float)
    assert len(decoded) == 16000
    delay = 22  # samples through the QMF filter pair
    assert np.corrcoef(tone[: -delay].astype(float), decoded[delay:])[0, 1] > 0.99


async def test_greeting_goes_out_as_g722(sip_rig, peer) -> None:
    """A hand-written caller offering G.722 first: our RTP is payload 9, 160 bytes and 160 RTP
    ticks per 20 ms, and decodes to the greeting."""
    rig = await sip_rig()
    loop = asyncio.get_running_loop()
    rtp_transport, rtp = await loop.create_datagram_endpoint(UdpPeer, local_addr=("127.0.0.1", 0))
    call_id, uri = uuid.uuid4().hex, f"sip:{NUMBER}@127.0.0.1"
    offer = _offer("9 0 8 101", "a=rtpmap:9 G722/8000", "a=rtpmap:101 telephone-event/8000")
    offer = offer.replace("192.0.2.1", "127.0.0.1").replace("audio 4000", f"audio {rtp.port}")
    try:
        ok = None
        await peer.ask(request("INVITE", peer.port, uri=uri, call_id=call_id, body=offer.encode(), extra=SDP),
                       rig.port)
        while status(ok) != 200:
            ok = await peer.next(5)
            assert ok is not None
        assert b"RTP/AVP 9 101" in ok and b"a=rtpmap:9 G722/8000" in ok
        tag = re.search(r";tag=([^;\s]+)", header(ok, "To") or "")
        assert tag is not None
        dialog = {"uri": uri, "call_id": call_id, "tags": f";tag={tag.group(1)}"}
        peer.transport.sendto(request("ACK", peer.port, **dialog), ("127.0.0.1", rig.port))  # type: ignore[union-attr]
        packets = []
        while len(packets) < 50:  # the first second of the greeting
            data = await rtp.next(5)
            assert data is not None, len(packets)
            packets.append(RtpPacket.parse(data))
        await peer.ask(request("BYE", peer.port, cseq=2, **dialog), rig.port)
    finally:
        rtp_transport.close()
    record = await rig.only_call()
    assert record.end_reason == "caller_hung_up"
    assert {p.payload_type for p in packets} == {9} and {len(p.payload) for p in packets} == {160}
    steps = {(b.timestamp - a.timestamp) & 0xFFFFFFFF for a, b in itertools.pairwise(packets) if not b.marker}
    assert steps == {160}  # 20 ms on the 8 kHz RTP clock, though the audio is 16 kHz
    decoder = G722Codec()
    audio = np.frombuffer(b"".join(decoder.decode(p.payload) for p in packets), "<i2").astype(float)
    assert len(audio) == 320 * len(packets) and np.sqrt(np.mean(audio ** 2)) > 300  # speech, not silence


@pytest.mark.models
async def test_wideband_call_transcribed_by_whisper(sip_rig) -> None:
    """LibriVox speech encoded to G.722 by the test, streamed by SIPp with payload type 9,
    through the real local Whisper: the pipeline runs at 16 kHz, no 8 kHz step on the way."""
    script, rates = AgentScript(), []

    def services(spec: AgentSpec, sample_rate: int) -> Services:
        rates.append(sample_rate)
        real = Services.from_spec(spec, sample_rate=sample_rate)
        return Services(stt=real.stt, llm=ScriptedLLM(script.reply), tts=SpeechTTS())

    rig = await sip_rig(script, services=services, spec=REAL_STT)
    run = await rig.sipp("call_speech_g722", timeout=90)
    assert run.returncode == 0 and run.successful == 1, run.output
    assert "RTP/AVP 9 101" in run.messages and "a=rtpmap:9 G722/8000" in run.messages  # our answer
    record = await rig.only_call()
    assert rates and set(rates) == {16000}
    said = [t.text for t in record.turns if t.role == "user"]
    assert len(said) == 1 and wer(CLIP_TEXT, said[0]) <= 0.25, said
    assert (record.transport_stats or {})["media_in"] > 200 and record.transport_stats["malformed"] == 0

"""G.722 and Opus when the caller offers them: the answer, the codecs both ways, and a SIPp
call whose G.722 speech reaches the real local Whisper at 16 kHz."""

from __future__ import annotations

import asyncio
import itertools
import re
import uuid

import numpy as np
import pytest
import soundfile as sf
import soxr
from aiortp import RtpPacket
from aiosipua import serialize_sdp

from tests.phone.kit import AgentScript, ScriptedLLM, SpeechTTS
from tests.phone.live_kit import wer
from voxline.pipelines.builder import Services
from voxline.spec import AgentSpec
from voxline.transports.sip.codecs import G722Codec, OpusCodec
from voxline.transports.sip.sdp import build_answer, build_offer, parse_offer

from .kit import CLIP, CLIP_TEXT, LIBRIVOX, NUMBER
from .peers import SDP, UdpPeer, header, request, status
from .test_real_whisper import REAL_STT


def _offer(formats: str, *extra: str) -> str:
    lines = ["v=0", "o=- 1 1 IN IP4 192.0.2.1", "s=-", "c=IN IP4 192.0.2.1", "t=0 0",
             f"m=audio 4000 RTP/AVP {formats}", *extra, "a=sendrecv"]
    return "\r\n".join(lines) + "\r\n"


def test_wideband_is_chosen_when_offered() -> None:
    assert parse_offer(_offer("9 0 8", "a=rtpmap:9 G722/8000")).payload_type == 9
    assert parse_offer(_offer("0 8 9")).payload_type == 9  # static: no rtpmap needed, any position
    assert parse_offer(_offer("0 8")).payload_type == 0
    assert parse_offer(_offer("8 0")).payload_type == 8
    offer = parse_offer(_offer("9 101", "a=rtpmap:9 G722/16000", "a=rtpmap:101 telephone-event/8000"))
    assert (offer.payload_type, offer.audio_rate, offer.dtmf_payload_type) == (9, 16000, 101)
    answer = serialize_sdp(build_answer(offer, host="127.0.0.1", port=5000, session_id="1"))
    assert "m=audio 5000 RTP/AVP 9 101" in answer and "a=rtpmap:9 G722/8000" in answer  # RFC 3551's clock
    opus = parse_offer(_offer("0 9 111", "a=rtpmap:111 opus/48000/2"))
    assert (opus.payload_type, opus.codec, opus.audio_rate, opus.clock_rate) == (111, "OPUS", 16000, 48000)
    answer = serialize_sdp(build_answer(opus, host="127.0.0.1", port=5000, session_id="1"))
    assert "a=rtpmap:111 opus/48000/2" in answer and "a=fmtp:111 useinbandfec=1" in answer
    assert parse_offer(_offer("0 96", "a=rtpmap:96 opus/16000/1")).payload_type == 0  # not RFC 7587's
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


WIDEBAND = {  # what a caller offers first -> what we must answer and send
    "g722": (("9 0 8 101", "a=rtpmap:9 G722/8000"), b"RTP/AVP 9 101", b"a=rtpmap:9 G722/8000", 9, 160, G722Codec),
    "opus": (("111 9 0 101", "a=rtpmap:111 opus/48000/2", "a=fmtp:111 minptime=10;useinbandfec=1"),
             b"RTP/AVP 111 101", b"a=rtpmap:111 opus/48000/2", 111, 960, OpusCodec),
}


@pytest.mark.parametrize("codec", list(WIDEBAND))
async def test_wideband_caller_both_ways(sip_rig, peer, codec: str) -> None:
    """A hand-written caller offering G.722 (or Opus) first: our RTP is that payload type with
    its RTP clock (8 kHz for G.722 though the audio is 16 kHz, 48 kHz for Opus) and decodes
    to the greeting; the caller's speech in that codec reaches the agent as a turn."""
    (formats, *rtpmaps), answer_media, answer_rtpmap, pt, ticks, codec_class = WIDEBAND[codec]
    replied = asyncio.Event()

    def reply(text: str) -> str:
        replied.set()  # a caller turn reached the agent
        return "I can help with that."

    rig = await sip_rig(AgentScript(transcripts=["He was not an ill disposed young man."], reply=reply))
    loop = asyncio.get_running_loop()
    rtp_transport, rtp = await loop.create_datagram_endpoint(UdpPeer, local_addr=("127.0.0.1", 0))
    call_id, uri = uuid.uuid4().hex, f"sip:{NUMBER}@127.0.0.1"
    offer = _offer(formats, *rtpmaps, "a=rtpmap:101 telephone-event/8000")
    offer = offer.replace("192.0.2.1", "127.0.0.1").replace("audio 4000", f"audio {rtp.port}")
    try:
        ok = None
        await peer.ask(request("INVITE", peer.port, uri=uri, call_id=call_id, body=offer.encode(), extra=SDP),
                       rig.port)
        while status(ok) != 200:
            ok = await peer.next(5)
            assert ok is not None
        assert answer_media in ok and answer_rtpmap in ok
        tag = re.search(r";tag=([^;\s]+)", header(ok, "To") or "")
        assert tag is not None
        dialog = {"uri": uri, "call_id": call_id, "tags": f";tag={tag.group(1)}"}
        peer.transport.sendto(request("ACK", peer.port, **dialog), ("127.0.0.1", rig.port))  # type: ignore[union-attr]
        packets = [RtpPacket.parse(await rtp.next(5) or b"")]
        while (data := await rtp.next(0.5)) is not None:  # the whole greeting, until our RTP pauses
            packets.append(RtpPacket.parse(data))
        assert len(packets) > 50
        # The caller speaks: the clip in the same codec, paced as a phone sends it.
        encoder, sent = codec_class(), _speech16k()
        for i, start in enumerate(range(0, len(sent) - 639, 640)):
            packet = RtpPacket(payload_type=pt, sequence_number=i, timestamp=i * ticks, ssrc=7,
                               payload=encoder.encode(sent[start:start + 640]))
            rtp_transport.sendto(packet.serialize(), ("127.0.0.1", _answered_port(ok)))
            await asyncio.sleep(0.02)
        await asyncio.wait_for(replied.wait(), 10)
        await peer.ask(request("BYE", peer.port, cseq=2, **dialog), rig.port)
    finally:
        rtp_transport.close()
    record = await rig.only_call()
    assert record.end_reason == "caller_hung_up"
    assert [t.role for t in record.turns][:2] == ["assistant", "user"]
    assert (record.transport_stats or {})["malformed"] == 0
    assert {p.payload_type for p in packets} == {pt}
    steps = {(b.timestamp - a.timestamp) & 0xFFFFFFFF for a, b in itertools.pairwise(packets) if not b.marker}
    assert steps == {ticks}  # 20 ms on the codec's RTP clock
    decoder = codec_class()
    audio = np.frombuffer(b"".join(decoder.decode(p.payload) for p in packets), "<i2").astype(float)
    assert len(audio) >= 300 * len(packets) and np.sqrt(np.mean(audio ** 2)) > 300  # speech, not silence


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


def _speech16k(secs: float = 2.0) -> bytes:
    """The first seconds of the LibriVox clip at 16 kHz, then silence (the end of the turn)."""
    samples, rate = sf.read(LIBRIVOX / f"{CLIP}.wav", dtype="float32")
    audio = np.concatenate([soxr.resample(samples, rate, 16000)[: int(16000 * secs)], np.zeros(9600, np.float32)])
    return (np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes()


def _answered_port(ok: bytes) -> int:
    m = re.search(rb"^m=audio (\d+) ", ok, re.M)
    assert m is not None
    return int(m.group(1))

"""The audio codecs of a SIP call: G.711 μ-law/A-law (aiortp) and G.722 (FFmpeg's, through PyAV).

A codec turns one 20 ms packet of 16-bit mono PCM at its ``rate`` into an RTP payload
and back. G.722 carries 16 kHz audio but its RTP clock runs at 8 kHz (the RFC 3551
quirk, kept for old equipment): a 20 ms packet is 320 samples and 160 bytes, and still
advances the RTP timestamp by 160. The call host gets audio at ``rate``, so a G.722
call reaches the speech recognizer as wideband audio without resampling.
"""

from __future__ import annotations

from typing import Protocol

from aiortp.codecs.g711 import PcmaCodec, PcmuCodec

CLOCK_RATE = 8000  # the RTP clock of every codec here (G.722 too)
PACKET_TICKS = 160  # 20 ms on that clock

# payload type (static) -> (SDP encoding name, audio sample rate)
STATIC = {0: ("PCMU", 8000), 8: ("PCMA", 8000), 9: ("G722", 16000)}


class Codec(Protocol):
    def encode(self, pcm: bytes) -> bytes: ...

    def decode(self, payload: bytes) -> bytes: ...


class G722Codec:
    """FFmpeg's G.722 (as aiortc's codec uses it): one encoder and one decoder per call,
    since both carry ADPCM state from packet to packet."""

    rate = 16000

    def __init__(self) -> None:
        import av  # PyAV comes with aiortc; imported here so G.711-only calls never load FFmpeg

        self._av = av
        self._encoder = self._context("w")
        self._decoder = self._context("r")

    def _context(self, mode: str):  # type: ignore[no-untyped-def]
        context = self._av.CodecContext.create("g722", mode)
        context.format, context.layout, context.sample_rate = "s16", "mono", self.rate
        return context

    def encode(self, pcm: bytes) -> bytes:
        frame = self._av.AudioFrame(format="s16", layout="mono", samples=len(pcm) // 2)
        frame.planes[0].update(pcm[: len(pcm) // 2 * 2])
        frame.sample_rate = self.rate
        return b"".join(bytes(p) for p in self._encoder.encode(frame))

    def decode(self, payload: bytes) -> bytes:
        try:
            frames = self._decoder.decode(self._av.Packet(payload))
        except self._av.FFmpegError:
            return bytes(len(payload) * 4)  # a damaged packet: its 20 ms as silence
        return b"".join(bytes(f.planes[0])[: f.samples * 2] for f in frames)


def codec_for(payload_type: int) -> Codec:
    if payload_type == 9:
        return G722Codec()
    return PcmaCodec() if payload_type == 8 else PcmuCodec()


def audio_rate(payload_type: int) -> int:
    return STATIC[payload_type][1]

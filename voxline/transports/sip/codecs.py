"""The audio codecs of a SIP call: G.711 μ-law/A-law (aiortp), G.722 and Opus (FFmpeg's, through PyAV).

A codec turns one 20 ms packet of 16-bit mono PCM at its ``rate`` into an RTP payload
and back. G.722 carries 16 kHz audio but its RTP clock runs at 8 kHz (the RFC 3551
quirk, kept for old equipment): a 20 ms packet is 320 samples and 160 bytes, and still
advances the RTP timestamp by 160. The call host gets audio at ``rate``, so a G.722
call reaches the speech recognizer as wideband audio without resampling. Opus always
has a 48 kHz RTP clock (RFC 7587, 960 ticks per 20 ms); we run it at 16 kHz mono, which
libopus encodes natively (FFmpeg's decoder gives 48 kHz: resampled to 16 kHz).
"""

from __future__ import annotations

from typing import Protocol

from aiortp.codecs.g711 import PcmaCodec, PcmuCodec

PACKET_SECS = 0.02

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

    def _context(self, mode: str, name: str = "g722"):  # type: ignore[no-untyped-def]
        context = self._av.CodecContext.create(name, mode)
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


class OpusCodec(G722Codec):
    def __init__(self) -> None:
        import av

        self._av = av
        self._encoder = self._context("w", "libopus")
        self._encoder.bit_rate = 32000
        self._encoder.options = {"application": "voip"}
        self._decoder = self._context("r", "libopus")
        self._resampler = av.AudioResampler(format="s16", layout="mono", rate=self.rate)

    def decode(self, payload: bytes) -> bytes:
        try:
            frames = self._decoder.decode(self._av.Packet(payload))
        except self._av.FFmpegError:
            return bytes(int(self.rate * PACKET_SECS) * 2)
        out = [r for f in frames for r in self._resampler.resample(f)]
        return b"".join(bytes(r.planes[0])[: r.samples * 2] for r in out)


def codec_for(encoding: str) -> Codec:
    """A fresh codec (its own state) for an SDP encoding name."""
    name = encoding.upper()
    if name == "OPUS":
        return OpusCodec()
    if name == "G722":
        return G722Codec()
    return PcmaCodec() if name == "PCMA" else PcmuCodec()

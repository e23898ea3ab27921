"""The visitor's audio is released by aiortc one frame after it arrives, not four."""

from __future__ import annotations

from aiortc import RTCPeerConnection
from aiortc.rtp import RtpPacket

from voxline.transports.web.jitter import shorten_audio_buffers


def _buffer(pc: RTCPeerConnection, kind: str):  # type: ignore[no-untyped-def]
    transceiver = next(t for t in pc.getTransceivers() if t.kind == kind)
    return transceiver.receiver._RTCRtpReceiver__jitter_buffer


def _packet(n: int) -> RtpPacket:
    packet = RtpPacket(sequence_number=n, timestamp=960 * n, payload=b"x")
    packet._data = packet.payload  # what the receiver sets once it has depayloaded it
    return packet


async def test_audio_frames_wait_for_one_more_frame_only() -> None:
    pc = RTCPeerConnection()
    try:
        pc.addTransceiver("audio")
        pc.addTransceiver("video")
        assert shorten_audio_buffers(pc) == 1
        audio, video = _buffer(pc, "audio"), _buffer(pc, "video")
        released = [audio.add(_packet(n))[1] for n in range(3)]
        # Frame 0 comes out as soon as frame 1 shows it is complete (aiortc's default waits for 4 more).
        assert released[0] is None and released[1] is not None and released[1].timestamp == 0
        assert released[2] is not None and released[2].timestamp == 960
        assert video._prefetch == 0  # video is left as it was
    finally:
        await pc.close()

"""One call's RTP: a UDP port pair from the configured range, G.711, G.722 or Opus both ways, RFC 4733 in.

aiortp supplies the wire formats (RTP/RTCP packets, the G.711 codecs, telephone
events), :mod:`.codecs` the codec of the call; the policy is ours:

* **symmetric RTP** (RFC 4961): we send to where the caller's packets come from, not
  only to the SDP address, so callers behind NAT hear us. The first valid packet
  latches the address; another source may take over only after the latched one has
  been silent for ``relatch_secs`` (no mid-call hijack by a stray sender);
* inbound packets go through a :class:`~.jitter.ReorderBuffer`, are decoded to 16-bit
  PCM at the codec's rate (:attr:`RtpMedia.rate`) and handed over in batches of ``batch_ms``;
* outbound, the caller of :meth:`send` paces (see :mod:`.transport`); we keep the
  RTP timestamp on the wall clock across pauses and set the marker bit at the start
  of each talk spurt;
* RTCP: a sender report every few seconds on port+1; inbound RTCP is read and ignored.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from aiortp import DtmfEvent, RtcpSrPacket, RtpPacket
from aiortp.packet import RtcpSenderInfo

from .codecs import PACKET_SECS, codec_for
from .jitter import LOST, NON_MEDIA, ReorderBuffer
from .sdp import MediaOffer

log = logging.getLogger("voxline.sip")

_NTP_EPOCH = 2208988800


@dataclass
class MediaStats:
    packets_in: int = 0
    packets_out: int = 0
    bytes_out: int = 0
    dtmf: int = 0
    malformed: int = 0  # not RTP, or an unknown payload type
    foreign: int = 0  # from a source other than the latched one
    rtcp_in: int = 0


class PortPool:
    """Even RTP ports (RTCP on the odd one above) from a range, handed out round-robin."""

    def __init__(self, first: int, last: int) -> None:
        self.first = first + (first % 2)
        self.last = last
        self._next = self.first
        self.in_use: set[int] = set()

    def candidates(self) -> list[int]:
        ports = [p for p in range(self.first, self.last, 2) if p + 1 <= self.last]
        start = max(0, (self._next - self.first) // 2) % max(1, len(ports))
        return [p for p in ports[start:] + ports[:start] if p not in self.in_use]


class _Socket(asyncio.DatagramProtocol):
    def __init__(self, on_datagram: Callable[[bytes, tuple[str, int]], None]) -> None:
        self.on_datagram = on_datagram
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:  # type: ignore[override]
        self.on_datagram(data, (str(addr[0]), int(addr[1])))

    def error_received(self, exc: Exception) -> None:
        pass  # ICMP port unreachable while the far end is not listening yet


class RtpMedia:
    def __init__(self, offer: MediaOffer, *, pool: PortPool, batch_ms: int = 80, jitter_packets: int = 3,
                 relatch_secs: float = 2.0, rtcp_interval_secs: float = 5.0) -> None:
        self.offer = offer
        self.codec = codec_for(offer.codec)
        self.rate = offer.audio_rate  # of the PCM in and out: 8000, or 16000 for G.722
        self.remote = offer.remote
        self.pool = pool
        self.port = 0
        self.stats = MediaStats()
        self.jitter = ReorderBuffer(jitter_packets)
        self.batch_ms = batch_ms
        self.relatch_secs = relatch_secs
        self.rtcp_interval_secs = rtcp_interval_secs
        self.on_audio: Callable[[bytes], None] | None = None
        self.on_dtmf: Callable[[str], None] | None = None
        self.last_rx = time.monotonic()
        self._latched: tuple[str, int] | None = None
        self._remote_ssrc: int | None = None
        self._batch = bytearray()
        self._dtmf_ts: int | None = None
        self._ssrc = secrets.randbits(32)
        self._seq = secrets.randbits(16)
        self._ts = secrets.randbits(32)
        self._last_send: float | None = None
        self._last_rtcp = time.monotonic()
        self._rtp: _Socket | None = None
        self._rtcp: _Socket | None = None

    @property
    def packet_bytes(self) -> int:
        """16-bit PCM in one 20 ms packet at the call's rate."""
        return int(self.rate * PACKET_SECS) * 2

    @property
    def ticks(self) -> int:
        """RTP timestamp units in one packet: 160 on the 8 kHz clock, 960 for Opus."""
        return int(self.offer.clock_rate * PACKET_SECS)

    @property
    def batch_bytes(self) -> int:
        return max(self.packet_bytes, self.rate * 2 * self.batch_ms // 1000)

    def agree(self, offer: MediaOffer) -> None:
        """The far end's answer to our offer: where to send, and in which codec."""
        if offer.payload_type != self.offer.payload_type:
            self.codec = codec_for(offer.codec)
            self.rate = offer.audio_rate
        self.offer, self.remote = offer, offer.remote

    async def open(self, host: str) -> int:
        """Bind the first free port pair in the pool's range; returns the RTP port."""
        loop = asyncio.get_running_loop()
        for port in self.pool.candidates():
            rtp, rtcp = _Socket(self._rtp_in), _Socket(self._rtcp_in)
            try:
                await loop.create_datagram_endpoint(lambda r=rtp: r, local_addr=(host, port))
            except OSError:
                continue
            try:
                await loop.create_datagram_endpoint(lambda r=rtcp: r, local_addr=(host, port + 1))
            except OSError:
                if rtp.transport is not None:
                    rtp.transport.close()
                continue
            self._rtp, self._rtcp, self.port = rtp, rtcp, port
            self.pool.in_use.add(port)
            self.pool._next = port + 2
            return port
        raise OSError("no free RTP port pair in the configured range")

    def close(self) -> None:
        for sock in (self._rtp, self._rtcp):
            if sock is not None and sock.transport is not None:
                sock.transport.close()
        self._rtp = self._rtcp = None
        self.pool.in_use.discard(self.port)

    # -- receiving -----------------------------------------------------------
    def _rtp_in(self, data: bytes, addr: tuple[str, int]) -> None:
        if len(data) < 12 or len(data) > 1500 or data[0] >> 6 != 2:
            self.stats.malformed += 1
            return
        try:
            packet = RtpPacket.parse(data)
        except (ValueError, IndexError):
            self.stats.malformed += 1
            return
        now = time.monotonic()
        if self._latched != addr:
            if self._latched is not None and now - self.last_rx < self.relatch_secs:
                self.stats.foreign += 1
                return
            self._latched = addr
        self.last_rx = now
        self.stats.packets_in += 1
        if packet.ssrc != self._remote_ssrc:
            if self._remote_ssrc is not None:
                self._emit(self.jitter.flush())
            self._remote_ssrc = packet.ssrc
            self.jitter.reset()
        pt = packet.payload_type
        if pt == self.offer.payload_type:
            self._emit(self.jitter.push(packet.sequence_number, packet.payload))
        elif self.offer.dtmf_payload_type is not None and pt == self.offer.dtmf_payload_type:
            self._emit(self.jitter.push(packet.sequence_number, NON_MEDIA))
            self._dtmf(packet)
        elif pt == 13:  # comfort noise: the caller is silent
            self._emit(self.jitter.push(packet.sequence_number, NON_MEDIA))
        else:
            self.stats.malformed += 1

    def _dtmf(self, packet: RtpPacket) -> None:
        try:
            event = DtmfEvent.parse(packet.payload)
        except ValueError:
            self.stats.malformed += 1
            return
        # One digit = one RTP timestamp; its end is sent three times.
        if event.end and packet.timestamp != self._dtmf_ts and event.event <= 15:
            self._dtmf_ts = packet.timestamp
            self.stats.dtmf += 1
            if self.on_dtmf is not None:
                self.on_dtmf(event.digit)

    def _emit(self, payloads: list[bytes | None]) -> None:
        for payload in payloads:
            self._batch += bytes(self.packet_bytes) if payload is LOST else self.codec.decode(payload)
        while len(self._batch) >= self.batch_bytes:
            chunk = bytes(self._batch[: self.batch_bytes])
            del self._batch[: self.batch_bytes]
            if self.on_audio is not None:
                self.on_audio(chunk)

    def idle_flush(self, *, fill: bool) -> None:
        """The stream paused: play what is held; with ``fill``, top up a batch with silence."""
        self._emit(self.jitter.flush())
        if fill:
            self._batch += bytes(self.batch_bytes - len(self._batch) % self.batch_bytes or self.batch_bytes)
            self._emit([])

    def _rtcp_in(self, data: bytes, addr: tuple[str, int]) -> None:
        self.stats.rtcp_in += 1

    # -- sending -------------------------------------------------------------
    @property
    def destination(self) -> tuple[str, int]:
        return self._latched or self.remote

    def send(self, pcm: bytes) -> None:
        """One 20 ms packet of 16-bit PCM at :attr:`rate`, now."""
        if self._rtp is None or self._rtp.transport is None or self.offer.direction in ("sendonly", "inactive"):
            return  # on hold: the caller does not want our audio
        now = time.monotonic()
        marker = 0
        if self._last_send is None or now - self._last_send > 0.04:
            marker = 1  # a new talk spurt: the timestamp follows the wall clock
            if self._last_send is not None:
                gap = round((now - self._last_send) / PACKET_SECS) * self.ticks
                self._ts = (self._ts + gap) & 0xFFFFFFFF
        else:
            self._ts = (self._ts + self.ticks) & 0xFFFFFFFF
        self._last_send = now
        self._seq = (self._seq + 1) & 0xFFFF
        payload = self.codec.encode(pcm)
        packet = RtpPacket(payload_type=self.offer.payload_type, marker=marker, sequence_number=self._seq,
                           timestamp=self._ts, ssrc=self._ssrc, payload=payload)
        self._rtp.transport.sendto(packet.serialize(), self.destination)
        self.stats.packets_out += 1
        self.stats.bytes_out += len(payload)

    def maybe_report(self) -> None:
        """An RTCP sender report, every ``rtcp_interval_secs`` while we send."""
        now = time.monotonic()
        if now - self._last_rtcp < self.rtcp_interval_secs or self._rtcp is None or self._rtcp.transport is None:
            return
        self._last_rtcp = now
        if not self.stats.packets_out:
            return
        wall = time.time() + _NTP_EPOCH
        ntp = (int(wall) << 32) | int((wall % 1) * (1 << 32))
        report = RtcpSrPacket(ssrc=self._ssrc, sender_info=RtcpSenderInfo(
            ntp_timestamp=ntp, rtp_timestamp=self._ts, packet_count=self.stats.packets_out,
            octet_count=self.stats.bytes_out & 0xFFFFFFFF))
        host, port = self.destination
        self._rtcp.transport.sendto(bytes(report), (host, port + 1))

"""Hand-written SIP peers on real loopback sockets: a UDP peer, a TCP/TLS peer, requests."""

from __future__ import annotations

import asyncio
import re
import ssl
import uuid


class UdpPeer(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.received: asyncio.Queue[bytes] = asyncio.Queue()
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport) -> None:  # type: ignore[no-untyped-def]
        self.transport = transport

    def datagram_received(self, data: bytes, addr) -> None:  # type: ignore[no-untyped-def]
        self.received.put_nowait(data)

    @property
    def port(self) -> int:
        assert self.transport is not None
        return self.transport.get_extra_info("sockname")[1]

    async def ask(self, data: bytes, port: int, timeout: float = 0.5) -> bytes | None:
        assert self.transport is not None
        self.transport.sendto(data, ("127.0.0.1", port))
        return await self.next(timeout)

    async def next(self, timeout: float = 0.5) -> bytes | None:
        try:
            return await asyncio.wait_for(self.received.get(), timeout)
        except TimeoutError:
            return None


class StreamPeer:
    """A SIP peer on one TCP (or TLS) connection, reading messages framed by Content-Length."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def connect(cls, port: int, *, tls: ssl.SSLContext | None = None) -> StreamPeer:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=tls,
                                                      server_hostname="localhost" if tls else None)
        return cls(reader, writer)

    @property
    def port(self) -> int:
        return self.writer.get_extra_info("sockname")[1]

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def next(self, timeout: float = 2.0) -> bytes | None:
        """The next message, or None at EOF / on timeout."""
        try:
            async with asyncio.timeout(timeout):
                head = await self.reader.readuntil(b"\r\n\r\n")
                m = re.search(rb"^Content-Length:\s*(\d+)", head, re.I | re.M)
                return head + await self.reader.readexactly(int(m.group(1)) if m else 0)
        except (TimeoutError, asyncio.IncompleteReadError, ConnectionError):
            return None

    async def closed(self, timeout: float = 2.0) -> bool:
        try:
            async with asyncio.timeout(timeout):
                return await self.reader.read(65536) == b""
        except TimeoutError:
            return False
        except ConnectionError:
            return True

    def close(self) -> None:
        self.writer.close()


def request(method: str, peer_port: int, *, body: bytes = b"", length: int | None = None,
            uri: str = "sip:+15550009999@127.0.0.1", extra: str = "", call_id: str | None = None,
            transport: str = "UDP", cseq: int = 1, tags: str = "") -> bytes:
    head = (
        f"{method} {uri} SIP/2.0\r\n"
        f"Via: SIP/2.0/{transport} 127.0.0.1:{peer_port};branch=z9hG4bK{uuid.uuid4().hex[:12]}\r\n"
        f"From: <sip:+15557654321@127.0.0.1>;tag=abc\r\n"
        f"To: <{uri}>{tags}\r\n"
        f"Call-ID: {call_id or uuid.uuid4().hex}\r\n"
        f"CSeq: {cseq} {method}\r\n"
        f"Max-Forwards: 70\r\n{extra}"
        f"Content-Length: {len(body) if length is None else length}\r\n\r\n"
    )
    return head.encode() + body


def status(response: bytes | None) -> int | None:
    return int(response.split(b" ", 2)[1]) if response else None


def header(message: bytes | None, name: str) -> str | None:
    m = re.search(rf"^{name}:\s*(.*?)\r$", (message or b"").decode(errors="replace"), re.I | re.M)
    return m.group(1) if m else None


OFFER = (b"v=0\r\no=caller 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
         b"m=audio 4000 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n"
         b"a=sendrecv\r\n")
SDP = "Content-Type: application/sdp\r\n"

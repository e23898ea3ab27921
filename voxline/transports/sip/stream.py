"""SIP over TCP and TLS: one listener per transport, messages framed by Content-Length.

Every connection feeds whole messages into the same checked intake as UDP datagrams
(:meth:`.wire.SipWire.received`), so the bounds, screening and dialog layer are the
same whatever the transport. What only a stream needs is here:

* framing (RFC 3261 §18.3): headers up to the blank line, then exactly Content-Length
  bytes of body. A message without Content-Length, with a bad or oversized one, or
  with more header bytes than allowed leaves the stream unframeable: the connection
  is closed rather than guessed at;
* RFC 5626 keepalives: a CRLFCRLF ping is answered with a CRLF pong;
* bounds: connections in total and per source address, a deadline for a message once
  it has started (no slow-drip headers), an idle timeout for a connection that no
  call uses, and a cap on unsent bytes for a peer that stops reading;
* what we send on a connection names that transport: the top Via of our requests and
  our Contact say TCP or TLS (with the TLS port), so the far end answers the same way;
* we open connections ourselves to a trunk or registrar reached over TCP or TLS
  (:func:`connect`); they are read the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiosipua import SipRequest, SipResponse
from aiosipua.header_codec import parse_via, stringify_via

from .config import SipLimits

if TYPE_CHECKING:
    from .wire import SipWire

log = logging.getLogger("voxline.sip")

_CONTENT_LENGTH = re.compile(rb"^(?:content-length|l)[ \t]*:[ \t]*(\S*?)[ \t]*\r?$", re.I | re.M)
_OUR_CONTACT = re.compile(r"^<sip:([^;>]+)>")


def tls_context(cert: str, key: str) -> ssl.SSLContext:
    """A server context for ``cert``/``key`` (PEM files); TLS 1.2 at the least."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert, key)
    return context


@dataclass
class StreamConnection:
    kind: str  # "TCP" or "TLS"
    writer: asyncio.StreamWriter
    contact: tuple[str, int]  # our address on this transport, for Via and Contact
    max_unsent: int

    def send(self, message: SipRequest | SipResponse) -> None:
        if self.writer.is_closing():
            return
        _name_transport(message, self.kind, self.contact)
        self.writer.write(bytes(message))
        if self.writer.transport.get_write_buffer_size() > self.max_unsent:
            log.warning("- SIP %s peer stopped reading: connection closed", self.kind)
            self.writer.transport.abort()


def _name_transport(message: SipRequest | SipResponse, kind: str, contact: tuple[str, int]) -> None:
    """Our Via (requests) and Contact say which transport and port this went out on."""
    host, port = contact
    if isinstance(message, SipRequest):
        vias = message.headers.get("via")
        if vias:
            via = parse_via(vias[0])
            if via.transport != kind:
                via.transport, via.host, via.port = kind, host, port
                message.headers.remove("Via")
                for value in (stringify_via(via), *vias[1:]):
                    message.headers.append("Via", value)
    value = message.headers.get_first("contact")
    if value and "transport=" not in value.lower():
        m = _OUR_CONTACT.match(value)
        if m is not None:
            target = m.group(1).rsplit("@", 1)
            user = f"{target[0]}@" if len(target) == 2 else ""
            message.headers.set_single("Contact", f"<sip:{user}{host}:{port};transport={kind.lower()}>")


class FramingError(Exception):
    """The stream cannot be split into messages any more: close it."""


async def read_message(reader: asyncio.StreamReader, first: bytes, limits: SipLimits) -> bytes:
    """The whole message that starts with the byte ``first`` (already read)."""
    async with asyncio.timeout(limits.stream_message_secs):
        try:
            head = first + await reader.readuntil(b"\r\n\r\n")
        except (asyncio.LimitOverrunError, asyncio.IncompleteReadError):
            raise FramingError("headers too long or cut off") from None
        if head.count(b"\n") > limits.max_headers + 1:
            raise FramingError("too many headers")
        found = _CONTENT_LENGTH.findall(head)
        if len(found) != 1 or not found[0].isdigit():
            raise FramingError("no usable Content-Length")
        length = int(found[0])
        if len(head) + length > limits.max_stream_message_bytes:
            raise FramingError("message too large")
        return head + (await reader.readexactly(length) if length else b"")


class StreamListener:
    """Accepts SIP connections on one port (``ssl``: TLS) and feeds their messages to the wire."""

    def __init__(self, wire: SipWire, kind: str, local_addr: tuple[str, int], limits: SipLimits, *,
                 contact: tuple[str, int], ssl_context: ssl.SSLContext | None = None,
                 in_use: Callable[[tuple[str, int]], bool] = lambda addr: False) -> None:
        self.wire, self.kind, self.local_addr, self.limits = wire, kind, local_addr, limits
        self.contact, self.ssl, self.in_use = contact, ssl_context, in_use
        self._server: asyncio.Server | None = None
        self._per_source: dict[str, int] = {}
        self._handlers: set[asyncio.Task[Any]] = set()
        self.refused = 0  # connections over the caps
        self.closed_unframeable = 0

    @property
    def bound(self) -> tuple[str, int]:
        return self.local_addr

    async def start(self) -> None:
        tls = {"ssl": self.ssl, "ssl_handshake_timeout": self.limits.stream_message_secs} if self.ssl else {}
        self._server = await asyncio.start_server(self._serve, self.local_addr[0], self.local_addr[1],
                                                  limit=self.limits.max_stream_message_bytes, **tls)
        self.local_addr = tuple(self._server.sockets[0].getsockname()[:2])  # type: ignore[assignment]
        if self.contact[1] == 0:
            self.contact = (self.contact[0], self.local_addr[1])

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        # Aborting the sockets ends each reader; cancelling asyncio's handler tasks would be logged.
        for connection in [c for c in self.wire.streams.values() if c.kind == self.kind]:
            connection.writer.transport.abort()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(2.0):
                await asyncio.gather(*self._handlers, return_exceptions=True)
        for task in list(self._handlers):
            task.cancel()
        if self._server is not None:
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
            self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._handlers.add(task)
        peer = writer.get_extra_info("peername")
        addr = (str(peer[0]), int(peer[1]))
        ip = addr[0]
        if (self._per_source.get(ip, 0) >= self.limits.max_connections_per_source
                or len(self.wire.streams) >= self.limits.max_connections):
            self.refused += 1
            writer.transport.abort()
            self._handlers.discard(task)  # type: ignore[arg-type]
            return
        self._per_source[ip] = self._per_source.get(ip, 0) + 1
        connection = StreamConnection(self.kind, writer, self.contact, self.limits.max_stream_message_bytes * 4)
        self.wire.streams[addr] = connection
        try:
            await self._read(reader, writer, addr)
        except FramingError as e:
            self.closed_unframeable += 1
            self.wire.stats.malformed += 1
            log.info("- SIP %s connection from %s closed: %s", self.kind, ip, e)
        except (ConnectionError, asyncio.IncompleteReadError, TimeoutError, ssl.SSLError):
            pass
        finally:
            if self.wire.streams.get(addr) is connection:
                del self.wire.streams[addr]
            left = self._per_source.get(ip, 1) - 1
            if left > 0:
                self._per_source[ip] = left
            else:
                self._per_source.pop(ip, None)
            writer.transport.abort()
            self._handlers.discard(task)  # type: ignore[arg-type]

    async def _read(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    addr: tuple[str, int]) -> None:
        await pump(self.wire, reader, writer, addr, self.limits, self.in_use)


async def pump(wire: SipWire, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, addr: tuple[str, int],
               limits: SipLimits, in_use: Callable[[tuple[str, int]], bool]) -> None:
    """Messages from one connection into the wire until it closes (or idles unused)."""
    blank = bytearray()  # CR/LF between messages: ignored, CRLFCRLF is a ping
    while True:
        try:
            async with asyncio.timeout(limits.stream_idle_secs):
                first = await reader.read(1)
        except TimeoutError:
            if in_use(addr):
                continue  # a call lives on this connection: quiet is normal
            return
        if not first:
            return
        if first in (b"\r", b"\n"):
            blank += first
            if blank.endswith(b"\r\n\r\n"):
                writer.write(b"\r\n")  # RFC 5626 §4.4.1 pong
                blank.clear()
            del blank[:-4]
            continue
        blank.clear()
        data = await read_message(reader, first, limits)
        wire.received(data, addr, max_bytes=limits.max_stream_message_bytes)


async def connect(wire: SipWire, addr: tuple[str, int], kind: str, limits: SipLimits, *, contact: tuple[str, int],
                  server_hostname: str | None = None,
                  in_use: Callable[[tuple[str, int]], bool] = lambda addr: False) -> asyncio.Task[None]:
    """Open a connection to a trunk or registrar (TLS: verified against the system's CAs and
    ``server_hostname``); its messages are read like an accepted one's. Returns the reader task."""
    context = ssl.create_default_context() if kind == "TLS" else None
    async with asyncio.timeout(limits.stream_message_secs):
        reader, writer = await asyncio.open_connection(
            addr[0], addr[1], ssl=context, limit=limits.max_stream_message_bytes,
            server_hostname=server_hostname if context else None)
    connection = StreamConnection(kind, writer, contact, limits.max_stream_message_bytes * 4)
    wire.streams[addr] = connection

    async def read() -> None:
        try:
            await pump(wire, reader, writer, addr, limits, in_use)
        except (FramingError, ConnectionError, asyncio.IncompleteReadError, TimeoutError, ssl.SSLError):
            pass
        finally:
            if wire.streams.get(addr) is connection:
                del wire.streams[addr]
            writer.transport.abort()

    return asyncio.create_task(read())

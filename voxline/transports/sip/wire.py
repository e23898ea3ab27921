"""SIP over UDP, TCP and TLS: messages in, checked, out to the dialog layer.

We give aiosipua's UAS a transport of our own rather than its ``UdpSipTransport``:
that one asserts ``isinstance(transport, asyncio.DatagramTransport)`` in
``connection_made``, which the selector loop's datagram transport does not satisfy on
Python 3.11, and it parses and logs whatever arrives. Here every datagram passes the
bounds first -- size, a start line that looks like SIP, a parse that cannot raise past
us, the mandatory headers, a body no shorter than its Content-Length -- and only then
reaches the UAS. Garbage is counted and dropped; requests we can answer get a clear
error (400, 501). Nothing a peer sent is logged verbatim.

TCP and TLS connections (:mod:`.stream`) frame their messages and hand them to the
same intake; :meth:`SipWire.send` answers on the connection a peer is using and over
UDP otherwise, so the dialog layer never needs to know the transport.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiosipua import SipMessage, SipRequest, SipResponse, SipTransport, generate_tag
from aiosipua.header_codec import parse_via, stringify_via
from aiosipua.message import missing_required_headers
from aiosipua.transport import _stamp_via_received

from voxline.logsafe import clean

if TYPE_CHECKING:
    from .stream import StreamConnection

log = logging.getLogger("voxline.sip")

# Methods the endpoint implements; anything else that looks like a method gets 501.
METHODS = frozenset({"INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "NOTIFY", "REFER", "UPDATE", "PRACK", "INFO"})
_REQUEST_LINE = re.compile(rb"^([A-Za-z]{2,16}) (\S{1,1024}) SIP/2\.0\r?\n")
_STATUS_LINE = re.compile(rb"^SIP/2\.0 [1-6]\d\d[ \r\n]")

Screen = Callable[[SipRequest, tuple[str, int]], bool]  # False: handled (or dropped) here
OnResponse = Callable[[SipResponse, tuple[str, int]], None]


@dataclass
class WireStats:
    datagrams: int = 0
    stream_messages: int = 0  # whole messages framed from TCP/TLS connections
    oversized: int = 0
    malformed: int = 0
    keepalives: int = 0
    bad_length: int = 0
    unknown_methods: int = 0
    errors: int = 0  # exceptions in our own handlers (logged, never fatal)


def reply(request: SipRequest, status: int, reason: str, headers: dict[str, str] | None = None,
          *, user_agent: str | None = None) -> SipResponse:
    """A stateless response to ``request`` (no dialog): Via, From, To+tag, Call-ID, CSeq."""
    resp = SipResponse(status_code=status, reason_phrase=reason)
    for via in request.headers.get("via"):
        resp.headers.append("Via", via)
    for name in ("From", "Call-ID", "CSeq"):
        value = request.headers.get_first(name.lower())
        if value:
            resp.headers.set_single(name, value)
    to = request.headers.get_first("to")
    if to:
        resp.headers.set_single("To", to if ";tag=" in to or status == 100 else f"{to};tag={generate_tag()}")
    if user_agent:
        resp.headers.set_single("User-Agent", user_agent)
    for name, value in (headers or {}).items():
        resp.headers.set_single(name, value)
    return resp


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, owner: SipWire) -> None:
        self._owner = owner

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._owner._udp = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self._owner.received(data, (str(addr[0]), int(addr[1])))

    def error_received(self, exc: Exception) -> None:  # ICMP unreachable and the like
        log.debug("- SIP socket error: %s", type(exc).__name__)


@dataclass
class SipWire(SipTransport):
    """aiosipua ``SipTransport`` over our checked UDP socket and stream connections."""

    max_datagram_bytes: int = 8192
    max_headers: int = 100
    user_agent: str | None = None
    screen: Screen | None = None
    on_response: OnResponse | None = None
    stats: WireStats = field(default_factory=WireStats)
    streams: dict[tuple[str, int], StreamConnection] = field(default_factory=dict)  # by peer address
    _udp: asyncio.DatagramTransport | None = field(default=None, init=False, repr=False)

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        await loop.create_datagram_endpoint(lambda: _Protocol(self), local_addr=self.local_addr)
        if self._udp is not None and self.local_addr[1] == 0:  # bound to an ephemeral port
            self.local_addr = tuple(self._udp.get_extra_info("sockname")[:2])  # type: ignore[assignment]

    @property
    def bound(self) -> tuple[str, int]:
        return self.local_addr

    def transport_to(self, addr: tuple[str, int]) -> str:
        """How ``addr`` reaches us: "UDP", or "TCP"/"TLS" while its connection is open."""
        connection = self.streams.get(addr)
        return connection.kind if connection is not None else "UDP"

    def send(self, message: SipRequest | SipResponse, addr: tuple[str, int]) -> None:
        connection = self.streams.get(addr)
        if connection is not None:
            connection.send(message)
            return
        if self._udp is not None and not self._udp.is_closing():
            self._udp.sendto(bytes(message), addr)

    def send_reply(self, response: SipResponse) -> None:
        """Via routing over UDP; on a stream, the connection the request came in on."""
        via = response.via[0] if response.via else None
        if via is not None and self.streams and via.received and via.rport:
            with contextlib.suppress(ValueError):
                connection = self.streams.get((via.received, int(via.rport)))
                if connection is not None:
                    connection.send(response)
                    return
        try:
            super().send_reply(response)
        except ValueError:  # no Via to route by: nothing sensible to answer
            pass

    async def stop(self) -> None:
        if self._udp is not None:
            self._udp.close()
            self._udp = None

    # -- receiving ------------------------------------------------------------
    def received(self, data: bytes, addr: tuple[str, int], *, max_bytes: int | None = None) -> None:
        """One datagram, or one framed stream message (``max_bytes``: the stream's bound)."""
        if max_bytes is None:
            self.stats.datagrams += 1
        else:
            self.stats.stream_messages += 1
        try:
            self._received(data, addr, max_bytes or self.max_datagram_bytes)
        except Exception as e:  # a bug in a handler must never take the socket down
            self.stats.errors += 1
            log.error("- SIP message from %s:%d could not be handled: %s", addr[0], addr[1], where(e))

    def _received(self, data: bytes, addr: tuple[str, int], max_bytes: int) -> None:
        if len(data) > max_bytes:
            self.stats.oversized += 1
            return
        if not data.strip(b"\r\n\0 "):  # RFC 5626 keepalive (CRLF) or padding
            self.stats.keepalives += 1
            return
        request_line = _REQUEST_LINE.match(data)
        if request_line is None and _STATUS_LINE.match(data) is None:
            self.stats.malformed += 1
            return
        head, sep, body = data.partition(b"\r\n\r\n")
        if not sep or head.count(b"\n") > self.max_headers:
            self.stats.malformed += 1
            return
        try:
            message = SipMessage.parse(data)
        except Exception:
            self.stats.malformed += 1
            return
        if isinstance(message, SipResponse):
            if self.on_response is not None and message.call_id and message.cseq:
                self.on_response(message, addr)
            return
        self._request(message, body, addr)

    def _request(self, request: SipRequest, body: bytes, addr: tuple[str, int]) -> None:
        missing = missing_required_headers(request)
        if "via" not in missing:
            _stamp_via_received(request, addr)  # answers go back where the request came from
            if addr in self.streams:
                _stamp_connection(request, addr)
        if missing:
            self.stats.malformed += 1
            if "via" not in missing:
                self._error(request, 400, "Missing Required Header")
            return
        if request.cseq is None or request.cseq.method.upper() != request.method.upper():
            self.stats.malformed += 1
            if request.method.upper() != "ACK":
                self._error(request, 400, "Bad CSeq")
            return
        declared = request.headers.get_first("content-length")
        if declared is not None:
            try:
                length = int(declared.strip())
            except ValueError:
                length = -1
            if length < 0 or length > len(body):  # RFC 3261 §18.3: a short body is an error
                self.stats.bad_length += 1
                if request.method.upper() != "ACK":
                    self._error(request, 400, "Bad Content-Length")
                return
        if request.method.upper() not in METHODS:
            self.stats.unknown_methods += 1
            self._error(request, 501, "Not Implemented")
            return
        if self.screen is not None and not self.screen(request, addr):
            return
        if self.on_message is not None:
            self.on_message(request, addr)

    def _error(self, request: SipRequest, status: int, reason: str) -> None:
        self.send_reply(reply(request, status, reason, user_agent=self.user_agent))


def _stamp_connection(request: SipRequest, addr: tuple[str, int]) -> None:
    """A request that came over a stream is answered on its connection (RFC 3261 §18.2.2):
    the top Via records that connection's address, which :meth:`SipWire.send_reply` reads."""
    vias = request.headers.get("via")
    via = parse_via(vias[0])
    via.params["received"], via.params["rport"] = addr[0], str(addr[1])
    request.headers.remove("Via")
    for value in (stringify_via(via), *vias[1:]):
        request.headers.append("Via", value)


def where(e: BaseException) -> str:
    """An exception's type and innermost code location: never its message (peer input)."""
    tb = e.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    if tb is None:
        return type(e).__name__
    return f"{type(e).__name__} at {tb.tb_frame.f_code.co_filename.rsplit('/', 1)[-1]}:{tb.tb_lineno}"


class _CleanArgs(logging.Filter):
    """aiosipua logs Call-IDs and URIs it received: escape and cap them like ours."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(clean(a, 64) if isinstance(a, str) else a for a in record.args)
        return record.levelno >= logging.WARNING


def quiet_library_logs() -> None:
    library = logging.getLogger("aiosipua")
    if not any(isinstance(f, _CleanArgs) for f in library.filters):
        library.addFilter(_CleanArgs())

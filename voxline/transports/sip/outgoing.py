"""Requests we send (BYE, REFER, REGISTER): retransmitted over UDP until answered.

A non-INVITE client transaction (RFC 3261 §17.1.2) in miniature: send, resend after
T1, 2·T1, ... up to T2 until a final response arrives or ``timeout`` passes; over a
TCP/TLS connection it is sent once. Responses are matched by Call-ID, CSeq number
and method.
"""

from __future__ import annotations

import asyncio
import contextlib

from aiosipua import SipRequest, SipResponse
from aiosipua.utils import generate_branch

from .wire import SipWire

T1, T2 = 0.5, 4.0


class ClientRequests:
    def __init__(self, wire: SipWire) -> None:
        self._wire = wire
        self._waiting: dict[tuple[str, int, str], asyncio.Future[SipResponse]] = {}
        self._provisional: set[tuple[str, int, str]] = set()

    @staticmethod
    def _key(message: SipRequest | SipResponse) -> tuple[str, int, str] | None:
        cseq = message.cseq
        if cseq is None or not message.call_id:
            return None
        return (message.call_id, cseq.seq, cseq.method.upper())

    async def send(self, request: SipRequest, addr: tuple[str, int], *, timeout: float = 8.0) -> SipResponse | None:
        """Send ``request`` to ``addr``; its final response, or None on timeout."""
        key = self._key(request)
        if key is None:
            raise ValueError("request without Call-ID/CSeq")
        future: asyncio.Future[SipResponse] = asyncio.get_running_loop().create_future()
        self._waiting[key] = future
        interval, sent = T1, False
        try:
            async with asyncio.timeout(timeout):
                while True:
                    # A 1xx stops retransmission; a stream needs none.
                    if key not in self._provisional and not (sent and self._wire.transport_to(addr) != "UDP"):
                        self._wire.send(request, addr)
                        sent = True
                    with contextlib.suppress(TimeoutError):
                        return await asyncio.wait_for(asyncio.shield(future), interval)
                    interval = min(interval * 2, T2)
        except TimeoutError:
            return None
        finally:
            self._waiting.pop(key, None)
            self._provisional.discard(key)

    def on_response(self, response: SipResponse, addr: tuple[str, int]) -> None:
        key = self._key(response)
        future = self._waiting.get(key) if key is not None else None
        if future is None or future.done() or key is None:
            return
        if response.status_code < 200:
            self._provisional.add(key)
        else:
            future.set_result(response)


def new_request(method: str, uri: str, *, from_: str, to: str, call_id: str, cseq: int,
                via: tuple[str, int], contact: str | None = None, user_agent: str | None = None) -> SipRequest:
    """An out-of-dialog request (REGISTER, INVITE) from ``via``, our signalling address."""
    request = SipRequest(method=method, uri=uri)
    request.headers.append("Via", f"SIP/2.0/UDP {via[0]}:{via[1]};branch={generate_branch()};rport")
    request.headers.set_single("Max-Forwards", "70")
    request.headers.set_single("From", from_)
    request.headers.set_single("To", to)
    request.headers.set_single("Call-ID", call_id)
    request.headers.set_single("CSeq", f"{cseq} {method}")
    if contact:
        request.headers.set_single("Contact", contact)
    if user_agent:
        request.headers.set_single("User-Agent", user_agent)
    return request


def ack_for_failure(invite: SipRequest, response: SipResponse) -> SipRequest:
    """The ACK of a non-2xx final answer to our INVITE (RFC 3261 §17.1.1.3): same
    transaction (top Via), the To tag of the answer."""
    ack = SipRequest(method="ACK", uri=invite.uri)
    ack.headers.append("Via", invite.headers.get_first("via") or "")
    for name in ("From", "Call-ID", "Max-Forwards"):
        ack.headers.set_single(name, invite.headers.get_first(name.lower()) or "")
    ack.headers.set_single("To", response.headers.get_first("to") or "")
    ack.headers.set_single("CSeq", f"{invite.cseq.seq if invite.cseq else 1} ACK")
    for route in invite.headers.get("route"):
        ack.headers.append("Route", route)
    return ack

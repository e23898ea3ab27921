"""Registration at a trunk or PBX (RFC 3261 §10): calls arrive without a static route.

``VOXLINE_SIP_REGISTER=sip:USER:PASSWORD@REGISTRAR[:PORT]`` binds
``sip:USER@REGISTRAR`` to our Contact. The REGISTER is answered with digest
credentials when challenged (401/407), asks again with the registrar's Min-Expires
after a 423, and is refreshed well before the granted interval ends (half of it, at
most 30 s early). A failure is retried with a bounded back-off, never in a tight
loop; on shutdown the binding is removed (``Expires: 0``). The registrar's address
is trusted for the INVITEs it sends us, like a ``VOXLINE_SIP_ALLOW`` entry.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Awaitable, Callable

from aiosipua import SipRequest, SipResponse
from aiosipua.auth import answer_challenge
from aiosipua.utils import generate_call_id, generate_tag

from .account import SipAccount
from .outgoing import ClientRequests, new_request

log = logging.getLogger("voxline.sip")

def refresh_after(granted: int) -> float:
    """Seconds until we register again: half the interval, but no more than 30 s early."""
    return max(granted / 2, granted - 30.0)


class Registration:
    def __init__(self, requests: ClientRequests, target: SipAccount, *, contact: tuple[str, int],
                 expires: int = 600, user_agent: str | None = None, retry_secs: tuple[float, float] = (5.0, 300.0),
                 on_address: Callable[[tuple[str, int]], None] | None = None,
                 reach: Callable[[tuple[str, int]], Awaitable[None]] | None = None) -> None:
        self.requests, self.target, self.contact, self.on_address = requests, target, contact, on_address
        self.reach = reach  # opens the connection first, for a registrar on TCP/TLS
        self.expires, self.user_agent, self.retry_secs = expires, user_agent, retry_secs
        self.call_id = generate_call_id(contact[0])  # one Call-ID and From tag for every REGISTER
        self._tag, self._cseq = generate_tag(), 0
        self.address: tuple[str, int] | None = None  # the registrar's, once resolved
        self.granted = 0  # seconds, while registered
        self.registered = asyncio.Event()
        self.refreshes = 0

    async def resolve(self) -> tuple[str, int]:
        infos = await asyncio.get_running_loop().getaddrinfo(self.target.host, self.target.port,
                                                             type=socket.SOCK_DGRAM)
        host, port = infos[0][4][:2]
        self.address = (str(host), int(port))
        if self.on_address is not None:
            self.on_address(self.address)
        return self.address

    async def run(self) -> None:
        """Register, then keep the binding fresh until cancelled."""
        backoff = self.retry_secs[0]
        while True:
            try:
                granted = await self.register(self.expires)
            except OSError as e:  # the registrar's name does not resolve, or no connection to it
                log.warning("- SIP registrar unreachable: %s", type(e).__name__)
                granted = None
            if granted:
                backoff = self.retry_secs[0]
                await asyncio.sleep(refresh_after(granted))
                self.refreshes += 1
            else:
                self.registered.clear()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.retry_secs[1])

    async def register(self, expires: int) -> int | None:
        """One REGISTER (answering one challenge); the granted interval, or None on failure."""
        address = self.address or await self.resolve()
        if self.reach is not None:
            await self.reach(address)
        credentials: tuple[str, str] | None = None
        for _ in range(3):  # a challenge, a 423, then it must succeed
            response = await self.requests.send(self._request(expires, credentials), address)
            if response is None:
                log.warning("- SIP REGISTER to %s: no answer", self.target.host)
                return None
            status = response.status_code
            if status in (401, 407) and credentials is None:
                credentials = answer_challenge(self.target.auth(), response,
                                               status, "REGISTER", self.target.registrar_uri)
                if credentials is not None:
                    continue
            elif status == 423 and (minimum := _int(response.get_header("min-expires"))) > expires:
                expires, credentials = minimum, None
                continue
            elif 200 <= status < 300:
                return self._granted(response, expires)
            log.warning("- SIP REGISTER to %s refused: %d", self.target.host, status)
            return None
        return None

    def _granted(self, response: SipResponse, asked: int) -> int:
        if asked == 0:
            self.registered.clear()
            return 0
        granted = next((_int(c.params.get("expires")) for c in response.contact  # our binding's interval
                        if (c.uri.host, c.uri.port or 5060) == self.contact and c.params.get("expires")), 0)
        self.granted = granted or _int(response.get_header("expires")) or asked
        if not self.registered.is_set():
            log.info("- SIP registered at %s for %d s", self.target.host, self.granted)
        self.registered.set()
        return self.granted

    def _request(self, expires: int, credentials: tuple[str, str] | None) -> SipRequest:
        self._cseq += 1
        host, port = self.contact
        request = new_request("REGISTER", self.target.registrar_uri, from_=f"<{self.target.aor}>;tag={self._tag}",
                              to=f"<{self.target.aor}>", call_id=self.call_id, cseq=self._cseq, via=self.contact,
                              contact=f"<sip:{self.target.user}@{host}:{port}>", user_agent=self.user_agent)
        request.headers.set_single("Expires", str(expires))
        if credentials is not None:
            request.headers.set_single(*credentials)
        return request

    async def unregister(self) -> None:
        """Remove our binding (best effort, quickly: we are shutting down)."""
        if not self.registered.is_set() or self.address is None:
            return
        with contextlib.suppress(Exception):
            async with asyncio.timeout(3.0):
                await self.register(0)


def _int(value: str | None) -> int:
    try:
        return int((value or "").strip())
    except ValueError:
        return 0

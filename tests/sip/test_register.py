"""Registration at a trunk: a small registrar written here, on a real UDP socket, challenges
with digest, grants a short interval (so the refresh comes soon) and then sends a call to
the Contact we registered -- from its own address, with no allow-list configured."""

from __future__ import annotations

import asyncio
import hashlib
import re
import secrets

from aiosipua import SipMessage, SipRequest, SipResponse

from .kit import NUMBER
from .peers import OFFER, SDP, header, request, status

GRANTED = 2  # seconds: the registrar's answer wins over what was asked


def _md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


class Registrar(asyncio.DatagramProtocol):
    def __init__(self, user: str, password: str) -> None:
        self.user, self.password, self.realm = user, password, "trunk.test"
        self.nonces: set[str] = set()
        self.registers: list[tuple[int, bool]] = []  # (Expires asked, authorized)
        self.contact: str | None = None
        self.responses: asyncio.Queue[bytes] = asyncio.Queue()
        self.transport: asyncio.DatagramTransport | None = None
        self.changed = asyncio.Event()

    def connection_made(self, transport) -> None:  # type: ignore[no-untyped-def]
        self.transport = transport

    @property
    def port(self) -> int:
        assert self.transport is not None
        return self.transport.get_extra_info("sockname")[1]

    def datagram_received(self, data: bytes, addr) -> None:  # type: ignore[no-untyped-def]
        message = SipMessage.parse(data)
        if isinstance(message, SipResponse):
            self.responses.put_nowait(data)
            return
        assert isinstance(message, SipRequest) and message.method == "REGISTER"
        authorized = self._authorized(message)
        self.registers.append((int(message.get_header("expires") or "-1"), authorized))
        if not authorized:
            nonce = secrets.token_hex(8)
            self.nonces.add(nonce)
            self._answer(message, 401, addr, f'WWW-Authenticate: Digest realm="{self.realm}", nonce="{nonce}", '
                                             'algorithm=MD5, qop="auth"\r\n')
        else:
            self.contact = (message.get_header("contact") or "").strip("<>")
            self._answer(message, 200, addr, f"Contact: <{self.contact}>;expires={GRANTED}\r\n")
        self.changed.set()

    def _authorized(self, message: SipRequest) -> bool:
        p = dict(re.findall(r'(\w+)="?([^",]*)"?', message.get_header("authorization") or ""))
        if p.get("username") != self.user or p.get("nonce") not in self.nonces:
            return False
        ha1 = _md5(f"{self.user}:{self.realm}:{self.password}")
        ha2 = _md5(f"REGISTER:{p['uri']}")
        expected = _md5(f"{ha1}:{p['nonce']}:{p.get('nc')}:{p.get('cnonce')}:auth:{ha2}")
        self.nonces.discard(p["nonce"])  # one use per nonce, as our own endpoint does
        return expected == p.get("response")

    def _answer(self, message: SipRequest, code: int, addr, extra: str) -> None:  # type: ignore[no-untyped-def]
        head = "".join(f"{name}: {message.get_header(name.lower())}\r\n" for name in ("Via", "From", "Call-ID", "CSeq"))
        text = (f"SIP/2.0 {code} {'OK' if code == 200 else 'Unauthorized'}\r\n{head}"
                f"To: {message.get_header('to')};tag=reg\r\n{extra}Content-Length: 0\r\n\r\n")
        assert self.transport is not None
        self.transport.sendto(text.encode(), addr)

    async def wait(self, predicate, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
        async with asyncio.timeout(timeout):
            while not predicate():
                self.changed.clear()
                await self.changed.wait()


async def test_registers_refreshes_and_takes_calls_from_the_trunk(sip_rig) -> None:
    loop = asyncio.get_running_loop()
    transport, registrar = await loop.create_datagram_endpoint(lambda: Registrar("frontdesk", "pa:ss"),
                                                               local_addr=("127.0.0.1", 0))
    try:
        rig = await sip_rig(allow="", register=f"sip:frontdesk:pa%3Ass@127.0.0.1:{registrar.port}",
                            register_expires_secs=600)
        # Challenged, answered with digest, granted 2 s; refreshed before it ran out.
        await registrar.wait(lambda: sum(ok for _, ok in registrar.registers) >= 2)
        assert registrar.registers[:2] == [(600, False), (600, True)]
        assert registrar.contact == f"sip:frontdesk@127.0.0.1:{rig.port}"
        assert rig.server.registration is not None and rig.server.registration.granted == GRANTED
        # The trunk calls the registered Contact for the dialed number (To): trusted as the registrar.
        invite = request("INVITE", registrar.port, uri=registrar.contact, body=OFFER, extra=SDP)
        invite = invite.replace(f"To: <{registrar.contact}>".encode(), f"To: <sip:{NUMBER}@127.0.0.1>".encode())
        transport.sendto(invite, ("127.0.0.1", rig.port))
        answers = []
        while (status(answers[-1]) if answers else 0) < 200:
            answers.append(await asyncio.wait_for(registrar.responses.get(), 10))
        assert status(answers[-1]) == 200, answers[-1]
        await rig.host.settle()
        records = await rig.calls()
        assert len(records) == 1 and records[0].to == NUMBER and records[0].direction == "inbound"
        to = header(answers[-1], "To") or ""
        dialog = {"uri": registrar.contact, "call_id": header(invite, "Call-ID"), "tags": to[to.index(";tag="):]}
        transport.sendto(request("ACK", registrar.port, **dialog), ("127.0.0.1", rig.port))
        transport.sendto(request("BYE", registrar.port, cseq=2, **dialog), ("127.0.0.1", rig.port))
        record = await rig.only_call()
        assert record.end_reason == "caller_hung_up"
        # Shutting down removes the binding.
        await rig.server.close()
        assert registrar.registers[-1][0] == 0
    finally:
        transport.close()


async def test_wrong_password_is_not_retried_in_a_loop(sip_rig) -> None:
    loop = asyncio.get_running_loop()
    transport, registrar = await loop.create_datagram_endpoint(lambda: Registrar("frontdesk", "right"),
                                                               local_addr=("127.0.0.1", 0))
    try:
        rig = await sip_rig(register=f"sip:frontdesk:wrong@127.0.0.1:{registrar.port}")
        await registrar.wait(lambda: len(registrar.registers) >= 2)
        await asyncio.sleep(0.5)
        assert registrar.registers == [(600, False), (600, False)]  # one challenge answered, then back-off
        assert rig.server.registration is not None and not rig.server.registration.registered.is_set()
    finally:
        transport.close()

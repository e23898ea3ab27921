"""Outbound calls over SIP: an INVITE through the configured trunk, the agent on the answer.

    dialer = server.dialer            # with VOXLINE_SIP_TRUNK (or VOXLINE_SIP_REGISTER)
    outcome = await dialer.dial(agent="restaurant", to="+15550001111", from_="+15550100001")

The call is admitted under the host's caps and recorded (``channel: sip``,
``direction: outbound``) before the INVITE leaves. aiosipua's UAC keeps the dialog
(tags, digest retry on 401/407, ACK of the 2xx); the rest is ours: the INVITE is
retransmitted over UDP until the first answer (Timer A), a non-2xx final answer is
ACKed, an unanswered call is cancelled after ``ring_timeout_secs``, and the answer's
SDP decides where and in which codec RTP goes. Then the call host runs the agent on
the same kind of line as an inbound call (BYE either way, dropped on lost media).
Without an answer the record is closed as ``busy``, ``no-answer``, ``failed`` or
``canceled``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING

from aiosipua import DialogState, SipResponse
from aiosipua import IncomingCall as SipDialog
from aiosipua.outgoing_call import OutgoingCall
from aiosipua.sdp import serialize_sdp

from voxline.errors import ProviderError
from voxline.logsafe import redact_number

from .account import SipAccount, parse_account
from .config import REGISTER_ENV, TRUNK_ENV, SipConfig
from .outgoing import T1, T2, ack_for_failure
from .rtp import RtpMedia
from .sdp import UNANSWERED, SdpError, build_offer, parse_offer

if TYPE_CHECKING:
    from voxline.pipelines.session import CallResult

    from .server import SipServer

log = logging.getLogger("voxline.sip")

_BUSY = {486, 600}
_NO_ANSWER = {408, 480, 487}


@dataclass(frozen=True)
class DialOutcome:
    call_id: str
    status: str  # completed | busy | no-answer | failed | canceled
    sip_status: int | None  # the far end's final answer, if any
    result: CallResult | None = None


class SipDialer:
    def __init__(self, server: SipServer, trunk: SipAccount, *, ring_timeout_secs: float = 45.0) -> None:
        self.server, self.trunk, self.ring_timeout_secs = server, trunk, ring_timeout_secs
        self._address: tuple[str, int] | None = None
        self._answered: dict[str, int] = {}  # SIP Call-ID -> CSeq of the last INVITE that got an answer
        # INVITEs we cancelled, whose 487 still needs its ACK after the call is gone (for Timer H).
        self._cancelled: dict[str, tuple[OutgoingCall, float]] = {}

    # -- responses (from the server's wire) ----------------------------------------
    def on_response(self, response: SipResponse, addr: tuple[str, int]) -> None:
        uac = self.server.uac
        call = uac.get_call(response.call_id or "")
        cseq = response.cseq
        if call is None and cseq is not None and response.status_code >= 300:
            cancelled = self._cancelled.get(response.call_id or "")
            if cancelled is not None and cancelled[0].remote_addr == addr:
                self.server.wire.send(ack_for_failure(cancelled[0].invite, response), addr)
            return
        if call is None or cseq is None or cseq.method.upper() != "INVITE":
            uac.handle_response(response, addr)
            return
        if addr != call.remote_addr:
            return  # only the trunk answers our INVITEs
        self._answered[call.call_id] = cseq.seq
        status = response.status_code
        if 200 <= status < 300 and response.contact and response.contact[0].uri.host:
            contact = response.contact[0].uri
            call.dialog.remote_target = (f"sip:{contact.user + '@' if contact.user else ''}{contact.host}"
                                         + (f":{contact.port}" if contact.port else ""))
        elif status >= 300:
            self.server.wire.send(ack_for_failure(call.invite, response), call.remote_addr)
        uac.handle_response(response, addr)

    # -- placing a call --------------------------------------------------------------
    async def address(self) -> tuple[str, int]:
        if self._address is None:
            loop = asyncio.get_running_loop()
            kind = socket.SOCK_DGRAM if self.trunk.transport == "UDP" else socket.SOCK_STREAM
            info = await loop.getaddrinfo(self.trunk.host, self.trunk.port, type=kind)
            self._address = (str(info[0][4][0]), int(info[0][4][1]))
        return self._address

    async def dial(self, *, agent: str, to: str, from_: str | None = None) -> DialOutcome:
        """Call ``to`` (E.164 or a sip: URI) with ``agent``; returns when the call is over."""
        server, host = self.server, self.server.host
        call_id = "SIP" + uuid.uuid4().hex
        refusal = await host.admit(call_id, agent)
        if refusal is not None:
            raise ProviderError(f"agent or tenant at its call cap ({refusal})", retryable=True)
        caller = from_ or self.trunk.user or "voxline"
        media = RtpMedia(UNANSWERED, pool=server.ports, batch_ms=server.config.inbound_batch_ms,
                         jitter_packets=server.config.jitter_packets)
        outgoing: OutgoingCall | None = None
        released, status, sip_status = False, "failed", None
        try:
            await media.open(server.config.host)
            await host.announce(call_id, agent=agent, channel="sip", direction="outbound", from_=from_ or caller,
                                to=to, status="ringing")
            offer = build_offer(host=server.config.advertised_host, port=media.port, session_id=call_id[-8:])
            remote = await self.address()
            await server.reach(remote, self.trunk)
            outgoing = server.uac.send_invite(
                self.trunk.uri(caller), to if to.startswith("sip:") else self.trunk.uri(to), remote,
                sdp_offer=offer, auth=self.trunk.auth(), user_agent=server.config.user_agent)
            log.info("%s outbound SIP call to %s for agent %s", call_id, redact_number(to), agent)
            status, sip_status = await self.ring(outgoing)
            if status != "answered":
                return DialOutcome(call_id, status, sip_status)
            answer = parse_offer(serialize_sdp(outgoing.sdp_answer)) if outgoing.sdp_answer else None
            if answer is None:
                raise SdpError(488, "no SDP in the answer")
            media.agree(answer)
            sip = SipDialog(dialog=outgoing.dialog, invite=outgoing.invite, transport=server.wire,
                            source_addr=remote, user_agent=server.config.user_agent,
                            advertised_addr=server.uas.advertised_addr)
            sip._answered = True
            line = server.line(call_id, sip, media)
            server.placed[outgoing.call_id] = line  # a BYE from the far end finds the line here
            watchdog = server._spawn(line.watch())
            released = True  # the host owns the reservation from here
            try:
                result = await host.run(line.for_host(agent=agent, direction="outbound", caller=from_ or caller,
                                                      dialed=to))
            finally:
                watchdog.cancel()
                await asyncio.shield(line.close())
            return DialOutcome(call_id, "completed" if result is not None else "busy", 200, result)
        except asyncio.CancelledError:
            status = "canceled"
            if outgoing is not None:
                self.cancel(outgoing)
            raise
        except (OSError, SdpError) as e:
            log.warning("%s outbound SIP call failed: %s", call_id, type(e).__name__)
            status = "failed"
            if outgoing is not None and outgoing.dialog.state == DialogState.CONFIRMED:
                with contextlib.suppress(ValueError):  # answered with nothing we can use
                    server.uac.send_bye(outgoing.dialog, outgoing.remote_addr)
            return DialOutcome(call_id, status, sip_status)
        finally:
            media.close()
            if outgoing is not None:
                server.placed.pop(outgoing.call_id, None)
                server.uac.remove_call(outgoing.call_id)
                self._answered.pop(outgoing.call_id, None)
            if not released:
                reason = "failed" if status == "answered" else status
                await asyncio.shield(self._never_connected(call_id, agent, reason))

    async def ring(self, outgoing: OutgoingCall, *, timeout: float | None = None) -> tuple[str, int | None]:
        """Until answered: ("answered", 200), or why not and the final status."""
        interval = T1
        try:
            async with asyncio.timeout(timeout or self.ring_timeout_secs):
                while True:
                    try:
                        await outgoing.wait_answered(timeout=interval)
                        return "answered", 200
                    except TimeoutError:
                        pass
                    seq = outgoing.invite.cseq.seq if outgoing.invite.cseq else 0
                    unreliable = self.server.wire.transport_to(outgoing.remote_addr) == "UDP"
                    if self._answered.get(outgoing.call_id) != seq and unreliable:
                        self.server.wire.send(outgoing.invite, outgoing.remote_addr)  # Timer A
                    interval = min(interval * 2, T2)
        except TimeoutError:
            self.cancel(outgoing)
            return "no-answer", None
        except RuntimeError:  # rejected
            code = outgoing._reject_code
            return ("busy" if code in _BUSY else "no-answer" if code in _NO_ANSWER else "failed"), code

    def cancel(self, outgoing: OutgoingCall) -> None:
        with contextlib.suppress(ValueError):  # not ringing any more: nothing to cancel
            self.server.uac.send_cancel(outgoing)
            now = time.monotonic()
            self._cancelled = {k: v for k, v in self._cancelled.items() if now - v[1] < 32.0}
            self._cancelled[outgoing.call_id] = (outgoing, now)

    async def _never_connected(self, call_id: str, agent: str, status: str) -> None:
        host = self.server.host
        await host.release(call_id, agent)
        if host.records is not None and host.agents[agent].memory.enabled:
            with contextlib.suppress(Exception):
                await host.records.close(call_id, reason=status)


def trunk_from(config: SipConfig) -> SipAccount | None:
    """The trunk outbound calls go through: ``VOXLINE_SIP_TRUNK``, else the registered account."""
    if config.trunk:
        return parse_account(config.trunk, TRUNK_ENV)
    if config.register:
        return parse_account(config.register, REGISTER_ENV, credentials=True)
    return None

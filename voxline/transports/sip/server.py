"""The SIP endpoint: INVITEs in, calls handed to the call host, dialogs torn down.

    server = await start_sip(host, routes.numbers, bind="0.0.0.0:5060")
    ...
    await server.close()

Per INVITE (after :mod:`.admission` let it through, over UDP, TCP or TLS): 100 Trying
(aiosipua), the session-timer terms (:mod:`.timers`), the host's admission under its
caps (else 486 Busy Here, or 503 with Retry-After while draining), the record opened
as ringing while 180 Ringing goes out and an RTP port pair is bound, optionally a ring
delay, 200 OK with our SDP answer once the record exists (retransmitted until ACK),
then ``host.run`` until the call ends. BYE from the caller ends the call as
``caller_hung_up``; a CANCEL before the answer closes the record as ``canceled``; lost
media or a session timer that ran out ends it as ``dropped``; when the call ends on
our side we send BYE. Whatever happens, the dialog's port pair and bookkeeping are
released.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from aiosipua import IncomingCall as SipInvite
from aiosipua import SipRequest, SipResponse, SipUAC, SipUAS

from voxline.logsafe import redact_number
from voxline.pipelines.host import CallHost

from .account import SipAccount, parse_account, unreachable
from .admission import Admission, Admitted, Refused
from .attended import Consultation, consult
from .call import SipCall
from .config import REGISTER_ENV, SipConfig
from .dial import SipDialer, trunk_from
from .guard import SourceGuard
from .outgoing import ClientRequests
from .register import Registration
from .rtp import PortPool, RtpMedia
from .sdp import SdpError, build_answer, parse_offer
from .stream import StreamListener, connect, tls_context
from .timers import SessionTerms, session_terms
from .wire import SipWire, quiet_library_logs, reply

log = logging.getLogger("voxline.sip")


@dataclass
class _Dialog:
    call_id: str
    admitted: Admitted
    sip: SipInvite
    terms: SessionTerms | None = None
    task: asyncio.Task[None] | None = None
    line: SipCall | None = None
    answered: bool = False
    timings: dict[str, float] = field(default_factory=dict)


class SipServer:
    def __init__(self, host: CallHost, numbers: Mapping[str, str], config: SipConfig) -> None:
        self.host = host
        self.config = config
        self.guard = SourceGuard(config.limits)
        self.admission = Admission(config, numbers, self.guard)
        self.ports = PortPool(*config.rtp_ports)
        self.wire = SipWire(local_addr=(config.host, config.port), max_datagram_bytes=config.limits.max_datagram_bytes,
                            max_headers=config.limits.max_headers, user_agent=config.user_agent)
        self.requests = ClientRequests(self.wire)
        self.wire.screen, self.wire.on_response = self._screen, self._on_response
        self.uac = SipUAC(self.wire)  # dialogs of the calls we place (aiosipua)
        self.uas = SipUAS(self.wire, user_agent=config.user_agent, retransmit_2xx=True, uac=self.uac,
                          session_expires=config.session_expires_secs, min_se=config.session_min_se)
        self.uas.on_invite, self.uas.on_bye, self.uas.on_cancel = self._on_invite, self._on_bye, self._on_cancel
        self.uas.on_ack_timeout, self.uas.on_reinvite = self._on_ack_timeout, self._on_reinvite
        # In place of the UAS's expiry (one BYE, never resent): the call ends and ours is retransmitted.
        self.uas._dispatch_session_expired = self._on_session_expired  # type: ignore[method-assign]
        self.listeners: list[StreamListener] = []
        self.registration: Registration | None = None
        trunk = trunk_from(config)  # fails fast on a malformed account
        self.dialer = SipDialer(self, trunk, ring_timeout_secs=config.ring_timeout_secs) if trunk else None
        self.placed: dict[str, SipCall] = {}  # lines of calls we placed, by SIP Call-ID
        self.consultations: dict[str, Consultation] = {}  # attended transfers' legs to the target
        self._register_to = (parse_account(config.register, REGISTER_ENV, credentials=True)  # fails fast
                             if config.register else None)
        self.dialogs: dict[str, _Dialog] = {}  # by the peer's SIP Call-ID
        self._next: tuple[Admitted, SessionTerms | None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        # Filled by each call: when its INVITE arrived, 200 OK left, the first RTP left.
        self.timings: dict[str, dict[str, float]] = {}

    @property
    def address(self) -> tuple[str, int]:
        return self.wire.bound

    @property
    def tls_address(self) -> tuple[str, int] | None:
        return next((s.bound for s in self.listeners if s.kind == "TLS"), None)

    async def start(self) -> None:
        quiet_library_logs()
        for attempt in range(20):  # port 0: the UDP port must be free for TCP too
            await self.uas.start()
            try:
                await self._listen()
                break
            except OSError:
                await self._stop_listening()
                if self.config.port != 0 or attempt == 19:
                    raise
                self.wire.local_addr = (self.config.host, 0)
        self.uas.advertised_addr = self.uac.advertised_addr = (self.config.advertised_host, self.address[1])
        if unreachable(self.config.advertised_host, self._register_to, self.dialer.trunk if self.dialer else None):
            log.warning("- SIP advertises %s to a remote registrar or trunk: set VOXLINE_SIP_PUBLIC_HOST",
                        self.config.advertised_host)
        if self._register_to is not None:
            target, contact = self._register_to, self.uas.advertised_addr
            self.admission.contact_users.add(target.user)
            self.registration = Registration(self.requests, target, contact=contact,
                                             expires=self.config.register_expires_secs,
                                             user_agent=self.config.user_agent,
                                             on_address=lambda addr: self.admission.trusted_ips.add(addr[0]),
                                             reach=lambda addr: self.reach(addr, target))
            self._spawn(self.registration.run())
        kinds = "/".join(["udp", *(s.kind.lower() for s in self.listeners)])
        log.info("- SIP listening on %s %s:%d%s", kinds, *self.address,
                 f" (tls on {self.tls_address[1]})" if self.tls_address else "")

    async def _listen(self) -> None:
        config, host = self.config, self.config.advertised_host
        if config.tcp:
            self.listeners.append(StreamListener(self.wire, "TCP", self.address, config.limits,
                                                 contact=(host, self.address[1]), in_use=self._in_use))
        if config.tls_cert and config.tls_key:
            context = tls_context(config.tls_cert, config.tls_key)
            self.listeners.append(StreamListener(self.wire, "TLS", (config.host, config.tls_port), config.limits,
                                                 contact=(host, config.tls_port), ssl_context=context,
                                                 in_use=self._in_use))
        for listener in self.listeners:
            await listener.start()

    async def _stop_listening(self) -> None:
        for listener in self.listeners:
            await listener.stop()
        self.listeners.clear()
        await self.uas.stop()

    async def reach(self, addr: tuple[str, int], account: SipAccount) -> None:
        """Before sending to a trunk or registrar on TCP/TLS: a connection of ours to it."""
        if account.transport == "UDP" or addr in self.wire.streams:
            return
        port = self.config.tls_port if account.transport == "TLS" else self.address[1]
        reader = await connect(self.wire, addr, account.transport, self.config.limits,
                               contact=(self.config.advertised_host, port), server_hostname=account.host,
                               in_use=lambda peer: bool(self.placed) or self.registration is not None)
        self._tasks.add(reader)
        reader.add_done_callback(self._tasks.discard)

    def _in_use(self, addr: tuple[str, int]) -> bool:
        return any(d.sip.source_addr == addr for d in self.dialogs.values())

    async def close(self) -> None:
        for leg in list(self.consultations.values()):
            leg.hang_up()
        if self.registration is not None:
            await self.registration.unregister()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._stop_listening()

    # -- screening (before the UAS sees an INVITE) ---------------------------
    def _screen(self, request: SipRequest, addr: tuple[str, int]) -> bool:
        if request.method.upper() != "INVITE" or (request.to_addr is not None and request.to_addr.tag):
            return True  # in-dialog: the UAS checks tags and CSeq
        if (request.call_id or "") in self.dialogs:
            return False  # a retransmission while we set the call up
        verdict = self.admission.check(request, addr[0])
        terms = session_terms(request, self.config) if isinstance(verdict, Admitted) else None
        refusal = verdict if isinstance(verdict, Refused) else terms if isinstance(terms, Refused) else None
        if refusal is not None:
            if refusal.status is not None:
                self.wire.send_reply(reply(request, refusal.status, refusal.reason, dict(refusal.headers or {}),
                                           user_agent=self.config.user_agent))
            return False
        assert isinstance(verdict, Admitted) and not isinstance(terms, Refused)
        self._next = (verdict, terms)
        return True

    # -- UAS callbacks ----------------------------------------------------------
    def _on_invite(self, sip: SipInvite) -> None:
        screened, self._next = self._next, None
        if screened is None:  # not screened (cannot happen): refuse rather than guess
            sip.reject(500, "Server Internal Error")
            self.uas._calls.pop(sip.call_id, None)
            return
        admitted, terms = screened
        if self.wire.transport_to(sip.source_addr) != "UDP":
            sip.retransmit_2xx = False  # a stream delivers the 200 OK or the connection fails
        # The UAS granted every INVITE a timer: keep it only for those that asked, on our terms.
        sip.session_interval = terms.interval if terms else None
        sip.session_refresher_us = terms.we_refresh if terms else True
        dialog = _Dialog(call_id="SIP" + uuid.uuid4().hex, admitted=admitted, sip=sip, terms=terms)
        self.dialogs[sip.call_id] = dialog
        self.guard.begin(admitted.source_ip)
        dialog.timings["invite"] = asyncio.get_running_loop().time()
        dialog.task = self._spawn(self._run(dialog))

    def _on_response(self, response: SipResponse, addr: tuple[str, int]) -> None:
        self.requests.on_response(response, addr)
        if self.dialer is not None:
            self.dialer.on_response(response, addr)

    def _line_of(self, sip_call_id: str) -> SipCall | None:
        """The line of a call we answered or placed, by its SIP Call-ID."""
        dialog = self.dialogs.get(sip_call_id)
        return dialog.line if dialog is not None else self.placed.get(sip_call_id)

    def _on_bye(self, sip: SipInvite, request: SipRequest) -> None:
        leg = self.consultations.get(sip.call_id)
        if leg is not None:  # the transfer target let the caller replace us
            leg.ended.set()
        line = self._line_of(sip.call_id)
        if line is not None:
            line.hung_up.set()

    def _on_cancel(self, request: SipRequest, addr: tuple[str, int]) -> None:
        dialog = self.dialogs.get(request.call_id or "")
        if dialog is None:
            return
        if dialog.answered:  # too late: the UAS forgot the dialog, keep it for the BYE
            self.uas._calls[dialog.sip.call_id] = dialog.sip
            return
        if dialog.task is not None:
            dialog.task.cancel()

    def _on_ack_timeout(self, sip: SipInvite) -> None:
        self._dropped(sip, "no ACK for 200 OK")

    def _on_session_expired(self, sip: SipInvite) -> None:
        """No refresh in time (RFC 4028 §10): the call is dropped, and its line sends BYE."""
        self._dropped(sip, "session timer expired without a refresh")

    def _dropped(self, sip: SipInvite, why: str) -> None:
        line = self._line_of(sip.call_id)
        if line is not None:
            log.warning("%s %s: call dropped", line.call_id, why)
            line.dropped = True
            self._spawn(line.transport.disconnected())

    def _on_reinvite(self, sip: SipInvite) -> None:
        """Hold/resume or a new address (either side of a call we answered or placed):
        answer with the same port and codec."""
        line = self._line_of(sip.call_id)
        if line is None:
            return
        media = line.media
        try:
            offer = parse_offer(sip.invite.text) if sip.invite.body else media.offer
        except SdpError as e:
            self.wire.send_reply(reply(sip.invite, e.status, e.reason, user_agent=self.config.user_agent))
            return
        # Keep our codec (the answer says which); take the new address and direction.
        offer = replace(offer, payload_type=media.offer.payload_type, encoding=media.offer.encoding)
        media.remote, media.offer = offer.remote, offer
        line.on_hold = offer.direction in ("recvonly", "inactive")  # they send nothing
        sip.accept(build_answer(offer, host=self.config.advertised_host, port=media.port,
                                session_id=line.call_id[-8:]))

    # -- one call ----------------------------------------------------------------
    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _run(self, dialog: _Dialog) -> None:
        host, admitted, sip = self.host, dialog.admitted, dialog.sip
        call_id, agent = dialog.call_id, admitted.agent
        released = False
        announced: asyncio.Task[None] | None = None
        media: RtpMedia | None = None
        watchdog: asyncio.Task[None] | None = None
        try:
            refusal = await host.admit(call_id, agent)
            if refusal is None and (host.draining or len(host.calls) >= host.limits.max_calls_per_worker):
                await host.release(call_id, agent)
                refusal = "busy" if not host.draining else "draining"
            if refusal is not None:
                released = True
                self._refuse(dialog, refusal)
                return
            # The record is written while the phone rings, and the call is answered once it
            # exists: a slow store rings a little longer rather than answering into silence.
            announced = self._spawn(host.announce(call_id, agent=agent, channel="sip", direction="inbound",
                                                  from_=admitted.caller, to=admitted.dialed, status="ringing"))
            sip.ringing()
            media = RtpMedia(admitted.offer, pool=self.ports, batch_ms=self.config.inbound_batch_ms,
                             jitter_packets=self.config.jitter_packets)
            await media.open(self.config.host)
            if self.config.answer_delay_secs > 0:
                await asyncio.sleep(self.config.answer_delay_secs)
            try:
                await announced  # the host's first write takes the ringing row over (owner, caller)
            except Exception as e:  # the store is down: refuse while we still can
                log.error("%s the call record could not be opened: %s", call_id, type(e).__name__)
                sip.reject(503, "Service Unavailable")
                return
            line = self.line(call_id, sip, media)
            sip.accept(build_answer(admitted.offer, host=self.config.advertised_host, port=media.port,
                                    session_id=call_id[-8:]))
            dialog.answered, dialog.line = True, line
            dialog.timings["ok"] = asyncio.get_running_loop().time()
            self.guard.end(admitted.source_ip)
            log.info("%s inbound SIP call from %s routed to agent %s (%s)", call_id,
                     redact_number(admitted.caller), agent, admitted.offer.codec)
            watchdog = self._spawn(line.watch())
            released = True  # from here on the host owns the reservation
            await host.run(line.for_host(agent=agent, direction="inbound", caller=admitted.caller,
                                         dialed=admitted.dialed))
        except asyncio.CancelledError:
            if announced is not None and not dialog.answered:
                log.info("%s canceled before answer", call_id)
                await self._close_record(call_id, agent, "canceled", announced)
            raise
        except OSError as e:  # no free RTP port: refuse while we still can
            log.error("%s cannot take the call: %s", call_id, type(e).__name__)
            if not dialog.answered:
                sip.reject(503, "Service Unavailable")
                if announced is not None:
                    await self._close_record(call_id, agent, "failed", announced)
        finally:
            await self._finish(dialog, media, watchdog, released=released)

    def _refuse(self, dialog: _Dialog, refusal: str) -> None:
        """486 when a cap is reached (the caller may try elsewhere); 503 + Retry-After while draining."""
        if refusal == "busy":
            dialog.sip.reject(486, "Busy Here")
            return
        dialog.sip._send_response(503, "Service Unavailable",
                                  extra_headers={"Retry-After": str(self.config.retry_after_secs)})
        dialog.sip.dialog.terminate()

    def line(self, call_id: str, sip: SipInvite, media: RtpMedia) -> SipCall:
        """The call host's line for a dialog we answered or placed."""
        return SipCall.open(call_id, sip, media, requests=self.requests,
                            contact=self.uas.advertised_addr or self.address, config=self.config,
                            consult=self._consult if self.dialer is not None else None)

    async def _consult(self, target: str) -> Consultation | None:
        """An attended transfer's call to ``target`` through the trunk (see :mod:`.attended`)."""
        assert self.dialer is not None
        return await consult(self, target, caller=self.dialer.trunk.user or "voxline",
                             ring_secs=self.config.consult_ring_secs)

    async def _close_record(self, call_id: str, agent: str, reason: str, announced: asyncio.Task[None]) -> None:
        with contextlib.suppress(Exception):
            await asyncio.shield(announced)  # the record exists before it is closed
        records = self.host.records
        if records is not None and self.host.agents[agent].memory.enabled:
            with contextlib.suppress(Exception):
                await records.close(call_id, reason=reason)

    async def _finish(self, dialog: _Dialog, media: RtpMedia | None, watchdog: asyncio.Task[None] | None,
                      *, released: bool) -> None:
        admitted = dialog.admitted
        if watchdog is not None:
            watchdog.cancel()
        if not released:
            await asyncio.shield(self.host.release(dialog.call_id, admitted.agent))
        if not dialog.answered:
            self.guard.end(admitted.source_ip)
        if dialog.line is not None:
            self.timings[dialog.call_id] = {**dialog.timings,
                                            "first_rtp": dialog.line.transport.output().clock.first_sent_at or 0.0}
            while len(self.timings) > 1000:
                self.timings.pop(next(iter(self.timings)))
            await asyncio.shield(dialog.line.close())
        elif media is not None:
            media.close()
        self.dialogs.pop(dialog.sip.call_id, None)
        self.uas._calls.pop(dialog.sip.call_id, None)


async def start_sip(host: CallHost, numbers: Mapping[str, str], *, bind: str = "0.0.0.0:5060",
                    config: SipConfig | None = None, **options: Any) -> SipServer:
    """Listen for SIP calls on ``bind`` (``HOST:PORT``) for the agents routed by ``numbers``.

    Trust lists, credentials and the RTP range come from the environment (see
    :mod:`.config`); ``options`` override any :class:`SipConfig` field.
    """
    server = SipServer(host, numbers, config or SipConfig.from_env(bind, **options))
    await server.start()
    return server

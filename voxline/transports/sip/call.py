"""One answered SIP call: the call host's :class:`~voxline.pipelines.call_control.CallLine`.

``epoch`` / ``heard_count`` / ``wait_heard`` come from the heard-text tracker over
the sent-audio ledger (see :mod:`.transport`); ``hang_up`` sends BYE once everything
sent has been played, ``transfer`` sends a blind REFER, or makes an attended transfer
(:mod:`.attended`) when that is the target's mode and the caller's phone can do it. A watchdog flushes the
jitter buffer when the caller's packets pause, feeds silence through a pause (phones
with silence suppression send nothing), sends RTCP reports and, after
``media_timeout_secs`` without a packet, reports the call as dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiosipua import DialogState, IncomingCall, SipRequest, SipResponse
from pipecat.processors.aggregators.dtmf_aggregator import DTMFAggregator

from voxline.errors import ProviderError
from voxline.pipelines.host import IncomingCall as HostCall
from voxline.transports.twilio.heard import HeardTextTracker
from voxline.transports.twilio.marks import MarkLedger

from .attended import Consultation, supports_replaces, transfer_mode
from .config import SipConfig
from .outgoing import ClientRequests
from .rtp import RtpMedia
from .transport import SipTransport

log = logging.getLogger("voxline.sip")


def refer_uri(target: str, domain: str) -> str:
    """A transfer target from configuration as a SIP URI: numbers go to the caller's domain."""
    if target.lower().startswith(("sip:", "sips:", "tel:")):
        return target
    return f"sip:{target}@{domain}"


@dataclass
class SipCall:
    call_id: str  # ours (the SIP Call-ID is the peer's and never keys anything)
    sip: IncomingCall
    media: RtpMedia
    transport: SipTransport
    ledger: MarkLedger
    heard: HeardTextTracker
    requests: ClientRequests
    contact: tuple[str, int]  # our signalling address, for Via/Contact
    media_timeout_secs: float = 30.0
    transfer_default: str = "blind"
    consult: Callable[[str], Awaitable[Consultation | None]] | None = None  # with a trunk
    replaces_ok: bool = False  # the caller's INVITE said it can act on a REFER with Replaces
    hung_up: asyncio.Event = field(default_factory=asyncio.Event)  # the far end sent BYE
    dropped: bool = False
    on_hold: bool = False  # the caller put us on hold (re-INVITE): silence is expected
    _bye_sent: bool = False

    @classmethod
    def open(cls, call_id: str, sip: IncomingCall, media: RtpMedia, *, requests: ClientRequests,
             contact: tuple[str, int], config: SipConfig,
             consult: Callable[[str], Awaitable[Consultation | None]] | None = None) -> SipCall:
        """A line on ``media`` for the dialog ``sip`` (one we answered, or one we placed)."""
        ledger = MarkLedger(prefix="rtp", mark_interval_secs=0.08)
        transport = SipTransport(media, ledger, playout_delay_secs=config.playout_delay_secs)
        return cls(call_id=call_id, sip=sip, media=media, transport=transport, ledger=ledger,
                   heard=HeardTextTracker(ledger, call_id=call_id), requests=requests, contact=contact,
                   media_timeout_secs=config.media_timeout_secs, transfer_default=config.transfer,
                   consult=consult, replaces_ok=supports_replaces(sip.invite))

    def for_host(self, *, agent: str, direction: str, caller: str | None, dialed: str | None) -> HostCall:
        """What the call host runs: this line, keypad digits to the agent, heard-text tracking."""
        return HostCall(
            call_id=self.call_id, agent=agent, channel="sip", direction=direction, caller=caller,
            dialed=dialed, transport=self.transport, line=self, sample_rate=self.media.rate,
            before_llm=[DTMFAggregator(timeout=1.5)], before_output=[self.heard.observer],
            after_output=[self.heard.gate], stats=self.stats, hangup=self.hung_up,
        )

    # -- CallLine --------------------------------------------------------------
    @property
    def epoch(self) -> int:
        return self.ledger.epoch

    @property
    def heard_count(self) -> int:
        return self.heard.heard_count

    async def wait_heard(self, text: str, *, since: int, timeout: float) -> bool:
        return await self.heard.wait_heard(text, since=since, timeout=timeout)

    async def hang_up(self) -> None:
        await self.ledger.wait_idle(5.0)  # the last words reached the caller's ear
        if not await self.bye():
            raise ProviderError("BYE was not answered", retryable=True)

    async def transfer(self, target: str) -> None:
        if self.sip.dialog.state != DialogState.CONFIRMED:
            raise ProviderError("the call is not up", retryable=False)
        mode, target = transfer_mode(target, self.transfer_default)
        if mode == "attended" and (self.consult is None or not self.replaces_ok):
            log.info("%s attended transfer not possible (%s): blind REFER", self.call_id,
                     "no trunk" if self.consult is None else "the caller does not support Replaces")
        elif mode == "attended":
            assert self.consult is not None
            leg = await self.consult(target)
            if leg is None:  # the caller stays with the agent, who is told
                raise ProviderError("the transfer target did not answer", retryable=False)
            response = await self._refer(leg.refer_to)
            if response is not None and 200 <= response.status_code < 300:
                leg.handed_over()
                return
            leg.hang_up()
            log.info("%s REFER with Replaces %s: blind REFER", self.call_id,
                     "refused" if response is not None else "not answered")
        response = await self._refer(refer_uri(target, _domain(self.sip)))
        if response is None:
            raise ProviderError("REFER was not answered", retryable=True)
        if not 200 <= response.status_code < 300:
            raise ProviderError.from_status(response.status_code, "REFER refused")

    async def _refer(self, refer_to: str) -> SipResponse | None:
        refer = self._request("REFER")
        refer.headers.set_single("Refer-To", f"<{refer_to}>")
        refer.headers.set_single("Referred-By", f"<{self.sip.dialog.local_uri}>")
        return await self.requests.send(refer, self.sip.source_addr)

    # -- dialog ----------------------------------------------------------------
    def _request(self, method: str) -> SipRequest:
        request = self.sip.dialog.create_request(method, via_host=self.contact[0], via_port=self.contact[1])
        request.headers.set_single("Contact", f"<sip:{self.contact[0]}:{self.contact[1]}>")
        return request

    async def bye(self) -> bool:
        """End the dialog from our side (once); True if the far end confirmed."""
        if self._bye_sent or self.hung_up.is_set() or self.sip.dialog.state != DialogState.CONFIRMED:
            return True
        self._bye_sent = True
        self.sip._stop_retransmissions()
        bye = self._request("BYE")
        self.sip.dialog.terminate()
        response = await self.requests.send(bye, self.sip.source_addr)
        return response is not None and response.status_code < 300

    # -- media watchdog ------------------------------------------------------
    async def watch(self) -> None:
        tick = self.media.batch_ms / 1000
        quiet = 0
        answered = time.monotonic()  # no media is owed before the answer, however slow it was
        while True:
            await asyncio.sleep(tick)
            idle = time.monotonic() - max(self.media.last_rx, answered)
            if idle > tick:
                quiet += 1
                self.media.idle_flush(fill=quiet > 1)
            else:
                quiet = 0
            self.media.maybe_report()
            if idle > self.media_timeout_secs and not self.on_hold:
                log.warning("%s no media for %.0f s: call dropped", self.call_id, idle)
                self.dropped = True
                await self.transport.disconnected()
                return

    def stats(self) -> dict[str, int]:
        m, j, out = self.media.stats, self.media.jitter.stats, self.transport.output()
        return {
            "media_in": m.packets_in, "media_out": m.packets_out, "dtmf": m.dtmf,
            "malformed": m.malformed, "foreign_rtp": m.foreign, "rtcp_in": m.rtcp_in,
            "reordered": j.reordered, "late_dropped": j.late, "lost": j.lost,
            "audio_in_dropped": self.transport.input().audio_dropped,
            "send_jitter_p99_ms": int(out.clock.percentile_ms(0.99)),
            "marks_sent": self.ledger.stats.sent, "marks_retired": self.ledger.stats.retired,
        }

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.bye()
        self.media.close()


def _domain(sip: IncomingCall) -> str:
    """The caller's domain (From host), where a bare transfer number is dialed."""
    from_addr = sip.invite.from_addr
    host = from_addr.uri.host if from_addr is not None and from_addr.uri is not None else ""
    return host or sip.source_addr[0]

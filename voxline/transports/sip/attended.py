"""Attended transfer (RFC 5589 §7): reach the target first, then hand the caller over with Replaces.

1. The caller was told to hold (``transfer_call``'s message). We place a consultation
   INVITE to the target through the trunk, as an outbound call is placed (no agent runs
   on it: it only has to be answered).
2. Answered: the caller gets a REFER whose Refer-To is the target's Contact with
   ``?Replaces=<Call-ID>;to-tag=<the target's tag>;from-tag=<ours>`` (RFC 3891, escaped
   into the URI). The caller's phone INVITEs the target with that Replaces header and
   the target swaps our consultation leg for the caller, then BYEs the leg. If it has
   not done so within ``replace_wait_secs`` we BYE the leg ourselves.
3. Not answered (or busy): the consultation is cancelled and the transfer fails, so the
   agent is back on the line and tells the caller.

The mode is per target (``+15550002222;transfer=attended`` in ``routes.yaml``) or the
endpoint's default (``VOXLINE_SIP_TRANSFER``). A caller whose INVITE did not list
``replaces`` in Supported (or whose Allow lacks REFER) cannot be handed over that way,
nor can one without a trunk to call the target through: they get a blind REFER.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import secrets
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import quote

from aiosipua import DialogState, SipRequest
from aiosipua.outgoing_call import OutgoingCall
from aiosipua.sdp import serialize_sdp

from .rtp import RtpMedia
from .sdp import UNANSWERED, SdpError, build_offer, parse_offer

if TYPE_CHECKING:
    from .server import SipServer

log = logging.getLogger("voxline.sip")

MODES = ("blind", "attended")
_MODE = re.compile(r";transfer=(\w+)\s*$", re.I)


def transfer_mode(target: str, default: str = "blind") -> tuple[str, str]:
    """``(mode, target)``: a ``;transfer=attended|blind`` suffix on the target wins over ``default``."""
    m = _MODE.search(target)
    if m is None or m.group(1).lower() not in MODES:
        return default, target
    return m.group(1).lower(), target[: m.start()]


def _tokens(request: SipRequest, name: str) -> set[str] | None:
    values = request.headers.get(name)
    if not values:
        return None
    return {t.strip().lower() for v in values for t in v.split(",") if t.strip()}


def supports_replaces(invite: SipRequest) -> bool:
    """The caller's phone said it can act on a REFER with Replaces."""
    supported = _tokens(invite, "supported") or set()
    allow = _tokens(invite, "allow")
    return "replaces" in supported and (allow is None or "refer" in allow)


def replaces_uri(target: str, call_id: str, *, to_tag: str, from_tag: str) -> str:
    """``target`` with the Replaces header of the dialog (Call-ID, the target's tag, ours) escaped in."""
    replaces = quote(f"{call_id};to-tag={to_tag};from-tag={from_tag}", safe="")
    return f"{target}?Replaces={replaces}"


@dataclass
class Consultation:
    """Our answered call to the transfer target, waiting to be replaced by the caller."""

    server: SipServer
    outgoing: OutgoingCall
    media: RtpMedia
    target_uri: str  # the target's Contact: where the caller's INVITE with Replaces goes
    ended: asyncio.Event = field(default_factory=asyncio.Event)  # the target sent BYE

    @property
    def refer_to(self) -> str:
        dialog = self.outgoing.dialog
        return replaces_uri(self.target_uri, dialog.call_id, to_tag=dialog.remote_tag, from_tag=dialog.local_tag)

    def handed_over(self) -> None:
        """The caller accepted the REFER: the leg ends when it is replaced (or after a while)."""
        self.server._spawn(self.release(self.server.config.replace_wait_secs))

    async def release(self, wait_secs: float) -> None:
        """Once the caller replaced us (the target's BYE), or after ``wait_secs``: the leg is gone."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.ended.wait(), wait_secs)
        self.hang_up()

    def hang_up(self) -> None:
        server, dialog = self.server, self.outgoing.dialog
        if not self.ended.is_set() and dialog.state == DialogState.CONFIRMED:
            with contextlib.suppress(ValueError):
                server.uac.send_bye(dialog, self.outgoing.remote_addr)
        self.media.close()
        server.consultations.pop(dialog.call_id, None)
        server.uac.remove_call(dialog.call_id)


async def consult(server: SipServer, target: str, *, caller: str, ring_secs: float) -> Consultation | None:
    """Call ``target`` (a number or sip: URI) through the trunk; the answered leg, or None."""
    dialer = server.dialer
    assert dialer is not None
    media = RtpMedia(UNANSWERED, pool=server.ports)
    outgoing: OutgoingCall | None = None
    answered = False
    try:
        await media.open(server.config.host)
        offer = build_offer(host=server.config.advertised_host, port=media.port, session_id=secrets.token_hex(4))
        remote = await dialer.address()
        await server.reach(remote, dialer.trunk)
        outgoing = server.uac.send_invite(
            dialer.trunk.uri(caller), target if target.lower().startswith("sip:") else dialer.trunk.uri(target),
            remote, sdp_offer=offer, auth=dialer.trunk.auth(), user_agent=server.config.user_agent)
        try:
            status, code = await dialer.ring(outgoing, timeout=ring_secs)
        except asyncio.CancelledError:  # the tool was cancelled (the caller spoke): stop ringing
            dialer.cancel(outgoing)
            raise
        if status != "answered":
            log.info("- transfer target did not answer (%s %s)", status, code or "")
            return None
        if outgoing.sdp_answer is not None:
            with contextlib.suppress(SdpError):
                media.agree(parse_offer(serialize_sdp(outgoing.sdp_answer)))
        leg = Consultation(server, outgoing, media, outgoing.dialog.remote_target or outgoing.dialog.remote_uri)
        server.consultations[outgoing.call_id] = leg
        answered = True
        return leg
    except OSError as e:
        log.warning("- consultation call failed: %s", type(e).__name__)
        return None
    finally:
        if not answered:
            media.close()
            if outgoing is not None:
                server.uac.remove_call(outgoing.call_id)

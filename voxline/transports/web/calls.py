"""One web session handed to the call host, whatever carried it (WebRTC or WebSocket).

Both carriers end here: the session id from the verified token becomes the call id,
the visitor's verified id (if any) the memory key, and the call runs on the host
like a phone call -- same caps, records, memory, tools, idle handling and limits.
Each session id runs at most once per worker (a second use of a token is refused);
across workers the host's claim on the call id refuses it.
"""

from __future__ import annotations

import logging
from collections import OrderedDict

from pipecat.transports.base_transport import BaseTransport

from voxline.pipelines.host import CallHost, IncomingCall

from .line import WebCall
from .rtvi import public_observer_params
from .tokens import SessionGrant

log = logging.getLogger("voxline.web")

WEB_RATE = 16000  # pipeline audio rate of web calls (Whisper's rate: no resampling for STT)


class SessionLedger:
    """Session ids this worker started (bounded); a token is good for one call."""

    def __init__(self, keep: int = 4096) -> None:
        self._used: OrderedDict[str, None] = OrderedDict()
        self._keep = keep

    def take(self, session_id: str) -> bool:
        if session_id in self._used:
            return False
        self._used[session_id] = None
        while len(self._used) > self._keep:
            self._used.popitem(last=False)
        return True

    def give_back(self, session_id: str) -> None:
        """The session never started (WebRTC did not connect): the fallback may use it."""
        self._used.pop(session_id, None)


async def run_web_call(host: CallHost, grant: SessionGrant, transport: BaseTransport, call: WebCall,
                       *, carrier: str) -> None:
    """Announce and run the call; returns when it has ended (its record closed)."""
    call.counters["websocket"] = int(carrier == "websocket")
    await host.announce(grant.session_id, agent=grant.agent, channel="web", direction="inbound",
                        from_=grant.visitor, to=grant.origin, status="in-progress")
    incoming = IncomingCall(
        call_id=grant.session_id, agent=grant.agent, channel="web", direction="inbound",
        caller=grant.visitor, dialed=grant.origin, transport=transport, line=call,
        sample_rate=WEB_RATE, before_output=call.before_output, after_output=call.after_output,
        stats=call.stats, caller_key=grant.visitor, rtvi=call.rtvi, rtvi_observer_params=public_observer_params(),
    )
    log.info("%s web session started over %s (agent %s, %s visitor)", grant.session_id, carrier,
             grant.agent, "known" if grant.visitor else "anonymous")
    await host.run(incoming)

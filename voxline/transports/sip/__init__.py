"""Phone calls over SIP without a carrier API: a UAS for trunks and PBXs, RTP media.

Needs the ``voxline[sip]`` extra. One entry point::

    from voxline.transports.sip import start_sip
    server = await start_sip(host, routes.numbers, bind="0.0.0.0:5060")
    ...
    await server.close()

Libraries, chosen by trial against SIPp: ``aiosipua`` (MIT) parses SIP and keeps the
dialog state -- transactions, 2xx retransmission until ACK, CANCEL matching, tag and
CSeq checks, and with its UAC the dialogs of the calls we place -- and ``aiortp``
(MIT) supplies the RTP/RTCP packet formats, G.711 codecs and RFC 4733 events. Both
stay behind this package: the sockets and every bound on peer input (:mod:`.wire`,
:mod:`.stream` for TCP/TLS, :mod:`.guard`), who may call (:mod:`.admission`,
:mod:`.digest`, :mod:`.timers`), the media timing (:mod:`.rtp`, :mod:`.jitter`,
:mod:`.transport`), the call lifecycle (:mod:`.server`, :mod:`.call`), registration
(:mod:`.register`) and outbound calls (:mod:`.dial`, :mod:`.place`) are ours, so either
library can be replaced without touching the call host. aiosipua's own transports are
not used: an assertion in its UDP ``connection_made`` fails on Python 3.11's selector
loop, and they would parse and log unchecked input. aiortp's ``RTPSession`` is not
used either: we need to pace sends ourselves to know what the caller heard, to bind
from a configured port range, and to latch symmetric RTP conservatively.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "SipConfig": "config", "SipLimits": "config",
    "SipServer": "server", "start_sip": "server",
    "SipCall": "call",
}

_checked = False


def __getattr__(name: str) -> Any:
    global _checked
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    if not _checked:
        from voxline.extras import require

        require("aiosipua", "sip")
        require("aiortp", "sip")
        _checked = True
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


if TYPE_CHECKING:
    from .call import SipCall
    from .config import SipConfig, SipLimits
    from .server import SipServer, start_sip

__all__ = ["SipCall", "SipConfig", "SipLimits", "SipServer", "start_sip"]

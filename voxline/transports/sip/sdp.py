"""SDP offer/answer for one audio stream (RFC 3264): G.711 μ-law or A-law, RFC 4733 DTMF.

We take the caller's first offered codec that we speak (their preference order) and
answer with it and, if offered, ``telephone-event``. No usable codec: 488. When we
place a call we offer PCMU, PCMA and ``telephone-event``, and read the answer the
same way as an offer.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from aiosipua import SdpMessage, build_sdp, parse_sdp

# payload type (static) -> encoding name; 8 kHz, 20 ms
CODECS = {0: "PCMU", 8: "PCMA"}
_BY_NAME = {name: pt for pt, name in CODECS.items()}
_ANSWER_DIRECTION = {"sendrecv": "sendrecv", "sendonly": "recvonly", "recvonly": "sendonly", "inactive": "inactive"}


class SdpError(ValueError):
    """The offer is unusable; ``status`` is the SIP response to send."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True)
class MediaOffer:
    """What we agreed with the caller."""

    remote: tuple[str, int]  # where the caller wants RTP
    payload_type: int  # 0 PCMU, 8 PCMA
    dtmf_payload_type: int | None  # telephone-event, if offered
    direction: str  # the caller's direction

    @property
    def codec(self) -> str:
        return CODECS[self.payload_type]


def parse_offer(body: str) -> MediaOffer:
    """The caller's SDP offer; raises :class:`SdpError`."""
    try:
        sdp = parse_sdp(body)
    except Exception:
        raise SdpError(400, "Bad SDP") from None
    audio = sdp.audio
    if audio is None or audio.port <= 0 or audio.port > 65535:
        raise SdpError(488, "Not Acceptable Here")
    connection = audio.connection or sdp.connection
    host = connection.address if connection is not None else ""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise SdpError(488, "Not Acceptable Here") from None
    names = {c.payload_type: (c.encoding_name.upper(), c.clock_rate) for c in audio.codecs}
    chosen: int | None = None
    dtmf: int | None = None
    for fmt in audio.formats:
        try:
            pt = int(fmt)
        except ValueError:
            continue
        name, rate = names.get(pt, (CODECS.get(pt, ""), 8000))
        if chosen is None and name in _BY_NAME and rate == 8000 and _BY_NAME[name] == pt:
            chosen = pt
        elif name == "TELEPHONE-EVENT" and rate == 8000 and dtmf is None:
            dtmf = pt
    if chosen is None:
        raise SdpError(488, "Not Acceptable Here")
    return MediaOffer(remote=(host, audio.port), payload_type=chosen, dtmf_payload_type=dtmf,
                      direction=audio.direction)


def build_answer(offer: MediaOffer, *, host: str, port: int, session_id: str) -> SdpMessage:
    sdp = build_sdp(host, port, offer.payload_type, offer.codec,
                    dtmf_payload_type=offer.dtmf_payload_type if offer.dtmf_payload_type is not None else 0,
                    session_id=session_id)
    audio = sdp.media[0]
    answer_direction = _ANSWER_DIRECTION.get(offer.direction, "sendrecv")
    for direction in _ANSWER_DIRECTION:
        audio.attributes.pop(direction, None)
    audio.attributes[answer_direction] = []
    sdp.session_name = "voxline"
    return sdp


# What we send before the far end has answered (nothing is sent until then).
UNANSWERED = MediaOffer(remote=("0.0.0.0", 0), payload_type=0, dtmf_payload_type=101, direction="sendrecv")


def build_offer(*, host: str, port: int, session_id: str) -> SdpMessage:
    sdp = build_sdp(host, port, 0, "PCMU", dtmf_payload_type=101, session_id=session_id)
    audio = sdp.media[0]
    audio.formats.insert(1, "8")
    audio.attributes["rtpmap"].insert(1, "8 PCMA/8000")
    sdp.session_name = "voxline"
    return sdp

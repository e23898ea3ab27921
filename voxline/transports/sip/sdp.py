"""SDP offer/answer for one audio stream (RFC 3264): Opus, G.722, G.711 μ-law or A-law, RFC 4733 DTMF.

We answer with Opus (``opus/48000/2``, its dynamic payload type from the offer) or else
G.722 whenever the caller offers them, wherever they stand in their list (wideband
speech is recognized better), else with their first G.711 codec (their preference
order), and with ``telephone-event`` if offered. No usable codec: 488. When we
place a call we offer G.722, PCMU, PCMA and ``telephone-event``, and read the answer
the same way as an offer.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from aiosipua import SdpMessage, build_sdp, parse_sdp

from .codecs import STATIC

# payload type (static) -> encoding name; 8 kHz RTP clock, 20 ms
CODECS = {pt: name for pt, (name, _) in STATIC.items()}
_BY_NAME = {name: pt for pt, name in CODECS.items()}
_PREFERRED = 9  # G.722
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
    payload_type: int  # 0 PCMU, 8 PCMA, 9 G.722
    dtmf_payload_type: int | None  # telephone-event, if offered
    direction: str  # the caller's direction
    encoding: str = ""  # a dynamic payload type's encoding (OPUS); static ones by number

    @property
    def codec(self) -> str:
        return self.encoding or CODECS[self.payload_type]

    @property
    def audio_rate(self) -> int:
        """The sample rate of the call's audio: 16 kHz for G.722 (its RTP clock is still 8 kHz) and Opus."""
        return 16000 if self.encoding == "OPUS" else STATIC[self.payload_type][1]

    @property
    def clock_rate(self) -> int:
        return 48000 if self.encoding == "OPUS" else 8000


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
    usable: list[int] = []
    opus: int | None = None
    dtmf: int | None = None
    for fmt in audio.formats:
        try:
            pt = int(fmt)
        except ValueError:
            continue
        name, rate = names.get(pt, (CODECS.get(pt, ""), 8000))
        if name == "G722" and rate == 16000:
            rate = 8000  # some phones write the audio rate instead of RFC 3551's clock rate
        if name in _BY_NAME and rate == 8000 and _BY_NAME[name] == pt:
            usable.append(pt)
        elif name == "OPUS" and rate == 48000 and 96 <= pt <= 127 and opus is None:
            opus = pt
        elif name == "TELEPHONE-EVENT" and rate == 8000 and dtmf is None:
            dtmf = pt
    if opus is not None:
        return MediaOffer(remote=(host, audio.port), payload_type=opus, dtmf_payload_type=dtmf,
                          direction=audio.direction, encoding="OPUS")
    if not usable:
        raise SdpError(488, "Not Acceptable Here")
    chosen = _PREFERRED if _PREFERRED in usable else usable[0]
    return MediaOffer(remote=(host, audio.port), payload_type=chosen, dtmf_payload_type=dtmf,
                      direction=audio.direction)


def build_answer(offer: MediaOffer, *, host: str, port: int, session_id: str) -> SdpMessage:
    sdp = build_sdp(host, port, offer.payload_type, offer.codec,
                    dtmf_payload_type=offer.dtmf_payload_type if offer.dtmf_payload_type is not None else 0,
                    session_id=session_id)
    audio = sdp.media[0]
    if offer.encoding == "OPUS":  # RFC 7587: always written as two channels at 48 kHz
        audio.attributes["rtpmap"][0] = f"{offer.payload_type} opus/48000/2"
        audio.attributes.setdefault("fmtp", []).insert(0, f"{offer.payload_type} useinbandfec=1")
    answer_direction = _ANSWER_DIRECTION.get(offer.direction, "sendrecv")
    for direction in _ANSWER_DIRECTION:
        audio.attributes.pop(direction, None)
    audio.attributes[answer_direction] = []
    sdp.session_name = "voxline"
    return sdp


# What we send before the far end has answered (nothing is sent until then).
UNANSWERED = MediaOffer(remote=("0.0.0.0", 0), payload_type=0, dtmf_payload_type=101, direction="sendrecv")


def build_offer(*, host: str, port: int, session_id: str) -> SdpMessage:
    sdp = build_sdp(host, port, 9, "G722", dtmf_payload_type=101, session_id=session_id)
    audio = sdp.media[0]
    audio.formats[1:1] = ["0", "8"]
    audio.attributes["rtpmap"][1:1] = ["0 PCMU/8000", "8 PCMA/8000"]
    sdp.session_name = "voxline"
    return sdp

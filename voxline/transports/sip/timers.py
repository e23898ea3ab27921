"""Session timers (RFC 4028): what interval and which refresher a call gets.

Only a caller that asks -- a ``Session-Expires`` header, or ``timer`` in Supported or
Require -- gets a session timer; a dead call of anyone else is found by the media
watchdog. We grant at most ``session_expires_secs`` and at least both Min-SE values;
an interval below our Min-SE is refused with 422 (the caller retries with ours). The
caller refreshes when it supports timers and did not name us, so the refreshes we
wait for are theirs: when none arrives in time (RFC 4028 §10) the call is ended with
BYE and recorded as dropped. When we must refresh, it is a bodyless UPDATE, so a
caller whose Allow lacks UPDATE and who cannot refresh itself gets no timer.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiosipua import SipRequest
from aiosipua.session_timer import parse_session_expires, peer_allows_update

from .admission import Refused
from .config import SipConfig


@dataclass(frozen=True)
class SessionTerms:
    interval: int  # seconds
    we_refresh: bool


def _tokens(request: SipRequest, *names: str) -> set[str]:
    values = [v for name in names for v in request.headers.get(name)]
    return {t.strip().lower() for v in values for t in v.split(",")}


def session_terms(request: SipRequest, config: SipConfig) -> SessionTerms | Refused | None:
    """The terms for an INVITE: None (it did not ask), or a 422 for too short an interval."""
    raw = request.get_header("session-expires")
    supports = "timer" in _tokens(request, "supported", "require")
    if raw is None and not supports:
        return None
    asked, refresher = parse_session_expires(raw) if raw else (config.session_expires_secs, None)
    if asked <= 0:
        return None  # unreadable: carry on without a timer
    if asked < config.session_min_se:
        return Refused(422, "Session Interval Too Small", {"Min-SE": str(config.session_min_se)})
    try:
        their_min = int((request.get_header("min-se") or "0").split(";")[0])
    except ValueError:
        their_min = 0
    interval = max(min(asked, config.session_expires_secs), their_min, config.session_min_se)
    we_refresh = refresher == "uas" or (refresher is None and not supports)
    if we_refresh and not peer_allows_update(request.headers.get("allow")):
        if not supports:
            return None
        we_refresh = False
    return SessionTerms(interval=interval, we_refresh=we_refresh)

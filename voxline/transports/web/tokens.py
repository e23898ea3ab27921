"""Session tokens (ours) and visitor tokens (the host site's).

**Session token.** ``POST /web/NAME/session`` from an allowed origin answers with a
token: an HMAC-SHA256 with the server's secret (``VOXLINE_SECRET``, shared by the
workers) over the session id, the agent, the page's origin, the visitor's memory key
and an expiry a minute away. The WebRTC offer or the WebSocket must present it; the
session id in it is the call id, so one token opens one call, on any worker.

**Visitor token.** A site that knows who its visitor is (a logged-in customer) signs
the visitor's id with the secret it shares with voxline (``VOXLINE_WIDGET_SECRET``)
and passes it to the widget as ``data-visitor-token``::

    expires = int(time.time()) + 3600
    mac = hmac.new(secret, f"{visitor_id}.{expires}".encode(), hashlib.sha256).hexdigest()
    token = f"{visitor_id}.{expires}.{mac}"

Memory then knows the visitor by ``visitor_id`` (an id of the site's choosing, e.g. a
customer number, or the customer's phone number in E.164 to share what the agent
remembers from phone calls). Without a valid one the visitor is anonymous: nothing
is recalled and nothing is remembered about them.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
import time
from dataclasses import dataclass

_VERSION = "w1"
_MAX_TOKEN_LEN = 1024
_VISITOR_ID = re.compile(r"^[A-Za-z0-9_.:@+-]{1,128}$")
MAX_VISITOR_TTL_SECS = 30 * 24 * 3600  # a visitor token valid for longer is refused


@dataclass(frozen=True)
class SessionGrant:
    session_id: str
    agent: str
    origin: str
    visitor: str | None  # the memory key of a known visitor
    expires: int


def new_session_id() -> str:
    return "WS" + secrets.token_hex(16)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(secret: bytes, body: str) -> str:
    return _b64(hmac.new(secret, f"{_VERSION}.{body}".encode(), hashlib.sha256).digest())


def issue_session(secret: bytes, grant: SessionGrant) -> str:
    payload = {"s": grant.session_id, "a": grant.agent, "o": grant.origin, "v": grant.visitor or "",
               "e": grant.expires}
    body = _b64(json.dumps(payload, separators=(",", ":")).encode())
    return f"{_VERSION}.{body}.{_mac(secret, body)}"


def verify_session(secret: bytes, token: object, *, agent: str, now: float | None = None) -> SessionGrant | None:
    """The grant of an unexpired token issued for ``agent``, else None."""
    if not isinstance(token, str) or len(token) > _MAX_TOKEN_LEN:
        return None
    version, _, rest = token.partition(".")
    body, _, mac = rest.partition(".")
    if version != _VERSION or not body or not hmac.compare_digest(mac, _mac(secret, body)):
        return None
    try:
        payload = json.loads(_unb64(body))
        grant = SessionGrant(session_id=str(payload["s"]), agent=str(payload["a"]), origin=str(payload["o"]),
                             visitor=str(payload["v"]) or None, expires=int(payload["e"]))
    except (ValueError, KeyError, TypeError):
        return None
    if grant.agent != agent or grant.expires < (now if now is not None else time.time()):
        return None
    return grant


def sign_visitor(secret: bytes, visitor_id: str, expires: int) -> str:
    """What the host site does (here for tests and for sites written in Python)."""
    mac = hmac.new(secret, f"{visitor_id}.{expires}".encode(), hashlib.sha256).hexdigest()
    return f"{visitor_id}.{expires}.{mac}"


def verify_visitor(secret: bytes | None, token: object, *, now: float | None = None) -> str | None:
    """The visitor id of a valid, unexpired visitor token; None for anything else."""
    if secret is None or not isinstance(token, str) or len(token) > 300:
        return None
    parts = token.rsplit(".", 2)
    if len(parts) != 3 or not parts[1].isdigit():
        return None
    visitor_id, expires_text, mac = parts
    if not _VISITOR_ID.match(visitor_id):
        return None
    expected = hmac.new(secret, f"{visitor_id}.{expires_text}".encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(mac.lower(), expected):
        return None
    current = now if now is not None else time.time()
    expires = int(expires_text)
    if expires < current or expires > current + MAX_VISITOR_TTL_SECS:
        return None
    return visitor_id

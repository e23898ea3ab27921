"""Per-call tokens: a media stream is served only for a call we announced ourselves.

When a webhook answers a call, its reply carries a token: an HMAC-SHA256, with the
server's secret, over the call id, the identity the webhook established (agent,
direction, numbers) and an expiry. The stream's opening message must present it for
the same call id; anything else it says about the call is ignored. A captured stream
signature alone therefore opens nothing, and one token opens one call.

``VOXLINE_SECRET`` holds the secret; servers behind one load balancer must share it.
Without it, ``voxline serve`` makes one for its workers at start (calls then cannot
move between separately started servers).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import time
from collections.abc import Mapping

SECRET_ENV = "VOXLINE_SECRET"
TOKEN_TTL_SECS = 300.0
_VERSION = "v1"
_MAX_TOKEN_LEN = 128


def server_secret() -> bytes:
    """The secret from the environment, created (and exported to child workers) if unset."""
    value = os.environ.get(SECRET_ENV)
    if not value:
        value = secrets.token_urlsafe(32)
        os.environ[SECRET_ENV] = value
    return value.encode()


def _mac(secret: bytes, call_id: str, identity: Mapping[str, str], expires: int) -> str:
    payload = "\n".join([_VERSION, call_id, str(expires), *(f"{k}={identity[k]}" for k in sorted(identity))])
    digest = hmac.new(secret, payload.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def issue(secret: bytes, call_id: str, identity: Mapping[str, str], *,
          ttl_secs: float = TOKEN_TTL_SECS, now: float | None = None) -> str:
    expires = int((now if now is not None else time.time()) + ttl_secs)
    return f"{_VERSION}.{expires}.{_mac(secret, call_id, identity, expires)}"


def verify(secret: bytes, token: object, call_id: str, identity: Mapping[str, str], *,
           now: float | None = None) -> bool:
    """True only for an unexpired token issued for exactly this call and identity."""
    if not isinstance(token, str) or len(token) > _MAX_TOKEN_LEN:
        return False
    version, _, rest = token.partition(".")
    expires_text, _, mac = rest.partition(".")
    if version != _VERSION or not expires_text.isdigit():
        return False
    expires = int(expires_text)
    if expires < (now if now is not None else time.time()):
        return False
    return hmac.compare_digest(mac, _mac(secret, call_id, identity, expires))

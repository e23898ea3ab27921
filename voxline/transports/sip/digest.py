"""Digest authentication of callers (RFC 3261 §22, RFC 2617 MD5 with qop=auth).

Nonces are stateless: ``<issued-at>.<hmac>`` signed with a per-process secret, so a
flood of challenges stores nothing. A nonce older than ``ttl`` is answered with a
fresh challenge marked ``stale=true`` (the caller retries without asking the user).
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum

from aiosipua import parse_auth


def _md5(text: str) -> str:
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()


class Verdict(Enum):
    OK = "ok"
    MISSING = "missing"  # no credentials: challenge
    STALE = "stale"  # a valid but expired nonce: challenge again, stale=true
    DENIED = "denied"  # wrong user, password or nonce: 403


@dataclass(frozen=True)
class DigestResult:
    verdict: Verdict
    user: str | None = None


class DigestAuth:
    def __init__(self, users: Mapping[str, str], *, realm: str, secret: bytes, ttl_secs: float = 300.0,
                 clock=time.time) -> None:  # type: ignore[no-untyped-def]
        self.users = dict(users)
        self.realm = realm
        self._secret = secret
        self._ttl = ttl_secs
        self._clock = clock

    def _sign(self, issued: str) -> str:
        return hmac.new(self._secret, issued.encode(), hashlib.sha256).hexdigest()[:32]

    def nonce(self) -> str:
        issued = f"{int(self._clock()):x}"
        return f"{issued}.{self._sign(issued)}"

    def challenge(self, *, stale: bool = False) -> str:
        """The ``WWW-Authenticate`` value of a 401."""
        value = f'Digest realm="{self.realm}", nonce="{self.nonce()}", algorithm=MD5, qop="auth"'
        return value + (", stale=true" if stale else "")

    def _nonce_state(self, nonce: str) -> Verdict:
        issued, _, mac = nonce.partition(".")
        if not issued or not hmac.compare_digest(mac, self._sign(issued)):
            return Verdict.DENIED
        try:
            age = self._clock() - int(issued, 16)
        except ValueError:
            return Verdict.DENIED
        return Verdict.OK if -5 <= age <= self._ttl else Verdict.STALE

    def verify(self, method: str, header: str | None) -> DigestResult:
        """Check an ``Authorization`` header against our users for ``method``."""
        if not header:
            return DigestResult(Verdict.MISSING)
        try:
            creds = parse_auth(header)
        except Exception:  # a garbled header is a failed attempt, not a crash
            return DigestResult(Verdict.DENIED)
        p = {k.lower(): v for k, v in creds.params.items()}
        if creds.scheme.lower() != "digest" or p.get("realm") != self.realm:
            return DigestResult(Verdict.DENIED)
        user, nonce, uri, response = p.get("username", ""), p.get("nonce", ""), p.get("uri", ""), p.get("response", "")
        password = self.users.get(user)
        if password is None or not nonce or not uri or not response:
            return DigestResult(Verdict.DENIED)
        state = self._nonce_state(nonce)
        if state is Verdict.DENIED:
            return DigestResult(Verdict.DENIED)
        algorithm = p.get("algorithm", "MD5").upper()
        if algorithm != "MD5":
            return DigestResult(Verdict.DENIED)
        ha1 = _md5(f"{user}:{self.realm}:{password}")
        ha2 = _md5(f"{method}:{uri}")
        qop = p.get("qop", "")
        if qop:
            if qop.lower() != "auth" or not p.get("nc") or not p.get("cnonce"):
                return DigestResult(Verdict.DENIED)
            expected = _md5(f"{ha1}:{nonce}:{p['nc']}:{p['cnonce']}:auth:{ha2}")
        else:
            expected = _md5(f"{ha1}:{nonce}:{ha2}")
        if not hmac.compare_digest(expected, response.lower()):
            return DigestResult(Verdict.DENIED)
        if state is Verdict.STALE:
            return DigestResult(Verdict.STALE)
        return DigestResult(Verdict.OK, user)

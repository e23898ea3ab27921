"""Digest authentication of callers (RFC 3261 §22, RFC 2617 MD5 with qop=auth).

A nonce is ``<issued-at>.<hmac>``, signed with a per-process secret, so a forged one is
refused without a lookup. Each nonce we issue is remembered with the highest
nonce-count (``nc``) accepted for it, so an Authorization cannot be used twice: a
request must carry a larger ``nc`` than any before on that nonce (without ``qop``, a
nonce serves one request). The table is bounded (``max_nonces``, oldest first out);
a nonce that is forgotten, older than ``ttl`` or replayed gets a fresh challenge
marked ``stale=true``: a real client retries at once without asking its user, a
replaying one learns nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections import OrderedDict
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
    REPLAYED = "replayed"  # right credentials on a nonce (and nc) already used: challenge again
    DENIED = "denied"  # wrong user, password or nonce: 403


@dataclass(frozen=True)
class DigestResult:
    verdict: Verdict
    user: str | None = None

    @property
    def ok(self) -> bool:
        return self.verdict is Verdict.OK


class DigestAuth:
    def __init__(self, users: Mapping[str, str], *, realm: str, secret: bytes, ttl_secs: float = 300.0,
                 max_nonces: int = 8192, clock=time.time) -> None:  # type: ignore[no-untyped-def]
        self.users = dict(users)
        self.realm = realm
        self._secret = secret
        self._ttl = ttl_secs
        self._clock = clock
        self._max_nonces = max_nonces
        self._issued: OrderedDict[str, int] = OrderedDict()  # nonce -> highest nc accepted (0: unused)

    def _sign(self, issued: str) -> str:
        return hmac.new(self._secret, issued.encode(), hashlib.sha256).hexdigest()[:32]

    def nonce(self) -> str:
        issued = f"{int(self._clock()):x}.{secrets.token_hex(4)}"
        nonce = f"{issued}.{self._sign(issued)}"
        self._issued[nonce] = 0
        while len(self._issued) > self._max_nonces:
            self._issued.popitem(last=False)
        return nonce

    def challenge(self, *, stale: bool = False) -> str:
        """The ``WWW-Authenticate`` value of a 401."""
        value = f'Digest realm="{self.realm}", nonce="{self.nonce()}", algorithm=MD5, qop="auth"'
        return value + (", stale=true" if stale else "")

    def _nonce_state(self, nonce: str) -> Verdict:
        issued, _, mac = nonce.rpartition(".")
        if not issued or not hmac.compare_digest(mac, self._sign(issued)):
            return Verdict.DENIED
        try:
            age = self._clock() - int(issued.split(".")[0], 16)
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
        qop, count = p.get("qop", ""), 1
        if qop:
            if qop.lower() != "auth" or not p.get("nc") or not p.get("cnonce"):
                return DigestResult(Verdict.DENIED)
            try:
                count = int(p["nc"], 16)
            except ValueError:
                return DigestResult(Verdict.DENIED)
            expected = _md5(f"{ha1}:{nonce}:{p['nc']}:{p['cnonce']}:auth:{ha2}")
        else:
            expected = _md5(f"{ha1}:{nonce}:{ha2}")
        if not hmac.compare_digest(expected, response.lower()):
            return DigestResult(Verdict.DENIED)
        used = self._issued.get(nonce)
        if state is Verdict.STALE or used is None:  # expired, or pushed out of the table
            self._issued.pop(nonce, None)
            return DigestResult(Verdict.STALE)
        if count <= used:
            return DigestResult(Verdict.REPLAYED)
        self._issued[nonce] = count
        return DigestResult(Verdict.OK, user)

"""Who may call, which agent answers, and what media: checked before anything is stored.

An INVITE passes, in order: the per-source flood bounds (else silence), trust
(a ``VOXLINE_SIP_ALLOW`` address or the registrar we registered at, or digest
credentials: else 401/403), the dialed number (the Request-URI's user part in
``routes.yaml`` ``numbers``; when the Request-URI is our registered Contact, the To
header's number, as a trunk sends it: else 404), and an
SDP offer we can answer (else 488). Authentication comes before routing, so an
unauthenticated peer cannot enumerate numbers.

The caller's identity is what was verified: for a trusted trunk, the From number it
vouches for; for a digest user, ``sip:USER@REALM`` (a From header is theirs to write).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

from aiosipua import SipRequest, parse_uri

from voxline.logsafe import redact_number
from voxline.routing import normalize_number

from .config import SipConfig
from .digest import DigestAuth, Verdict
from .guard import SourceGuard
from .sdp import MediaOffer, SdpError, parse_offer

log = logging.getLogger("voxline.sip")


@dataclass(frozen=True)
class Admitted:
    agent: str
    dialed: str  # the routing key that matched
    caller: str | None
    offer: MediaOffer
    source_ip: str
    user: str | None  # the digest user, if one authenticated


@dataclass(frozen=True)
class Refused:
    status: int | None  # None: drop without an answer
    reason: str = ""
    headers: Mapping[str, str] | None = None


def _number(user: str | None) -> str | None:
    if not user:
        return None
    number = normalize_number(user)
    return number if number.startswith("+") else None


class Admission:
    def __init__(self, config: SipConfig, numbers: Mapping[str, str], guard: SourceGuard) -> None:
        self.config = config
        self.numbers = {normalize_number(k): v for k, v in numbers.items()}
        self.guard = guard
        self.trusted_ips: set[str] = set()  # registrars we registered at
        self.contact_users: set[str] = set()  # our registered Contact's user: route by To
        self.digest = DigestAuth(config.users, realm=config.realm, secret=config.nonce_secret,
                                 ttl_secs=config.nonce_ttl_secs, max_nonces=config.limits.nonces_tracked)

    def route(self, request_uri: str) -> tuple[str, str] | None:
        """(routing key, agent) for the dialed Request-URI, or None."""
        try:
            uri = parse_uri(request_uri)
        except Exception:
            return None
        if not uri.user:
            return None
        for key in (normalize_number(uri.user), normalize_number(f"sip:{uri.user}@{uri.host}")):
            agent = self.numbers.get(key)
            if agent is not None:
                return key, agent
        return None

    def check(self, request: SipRequest, ip: str) -> Admitted | Refused:
        if not self.guard.allow_invite(ip):
            return Refused(None)
        user: str | None = None
        if not self.config.trusted(ip) and ip not in self.trusted_ips:
            if not self.digest.users:
                log.info("- INVITE from %s refused: not an allowed address", ip)
                return Refused(403, "Forbidden")
            result = self.digest.verify("INVITE", request.get_header("authorization"))
            if result.verdict is Verdict.REPLAYED:
                log.warning("- INVITE from %s refused: digest credentials used before", ip)
            if result.verdict in (Verdict.MISSING, Verdict.STALE, Verdict.REPLAYED):
                challenge = self.digest.challenge(stale=result.verdict is not Verdict.MISSING)
                return Refused(401, "Unauthorized", {"WWW-Authenticate": challenge})
            if result.verdict is Verdict.DENIED:
                self.guard.auth_failed(ip)
                log.warning("- INVITE from %s refused: digest authentication failed", ip)
                return Refused(403, "Forbidden")
            user = result.user
        routed = self.route(request.uri)
        to_addr = request.to_addr
        if routed is None and _user_part(request.uri) in self.contact_users and to_addr is not None:
            routed = self.route(f"sip:{to_addr.uri.user}@{to_addr.uri.host}") if to_addr.uri.user else None
        if routed is None:
            dialed = _user_part(request.uri)
            log.info("- INVITE from %s to unrouted number %s", ip, redact_number(dialed))
            return Refused(404, "Not Found")
        if not request.body or (request.content_type or "").split(";")[0].strip().lower() != "application/sdp":
            return Refused(488, "Not Acceptable Here")  # we answer offers; no late offer
        try:
            offer = parse_offer(request.text)
        except SdpError as e:
            return Refused(e.status, e.reason)
        from_addr = request.from_addr
        from_user = from_addr.uri.user if from_addr is not None and from_addr.uri is not None else None
        caller = f"sip:{user}@{self.config.realm}" if user else _number(from_user)
        key, agent = routed
        return Admitted(agent=agent, dialed=key, caller=caller, offer=offer, source_ip=ip, user=user)


def _user_part(request_uri: str) -> str | None:
    try:
        return parse_uri(request_uri).user
    except Exception:
        return None

"""What a SIP endpoint needs to know: where to listen, who may call, media ports, bounds.

Configuration enters through :class:`SipConfig`; the environment only supplies the
trust lists and secrets (:meth:`SipConfig.from_env`):

- ``VOXLINE_SIP_ALLOW``: comma-separated CIDRs (a trunk's or PBX's addresses) that
  may call without credentials, e.g. ``10.0.0.0/8,203.0.113.7/32``.
- ``VOXLINE_SIP_USERS``: ``user:password,...`` -- digest credentials for everyone else.
- ``VOXLINE_SIP_REALM``: the digest realm (default ``voxline``).
- ``VOXLINE_SIP_RTP_PORTS``: ``MIN-MAX``, the UDP range for media (default 10000-20000).
- ``VOXLINE_SIP_PUBLIC_HOST``: the address written into Contact and SDP when the
  bind address is not what peers reach (NAT, containers).
- ``VOXLINE_SIP_TLS_CERT`` / ``VOXLINE_SIP_TLS_KEY``: PEM files; with both, SIP over
  TLS is answered on ``VOXLINE_SIP_TLS_PORT`` (default 5061). TCP is always answered
  on the UDP port.
- ``VOXLINE_SIP_REGISTER``: ``sip:USER:PASSWORD@REGISTRAR[:PORT]`` -- register there
  (digest, refreshed before expiry) so a trunk or PBX sends calls without a static route.
- ``VOXLINE_SIP_TRUNK``: ``sip:[USER:PASSWORD@]HOST[:PORT][;transport=tcp|tls]`` -- where outbound calls go
  (default: the registered account).
- ``VOXLINE_SIP_TRANSFER``: ``blind`` (default) or ``attended`` -- how ``transfer_call``
  hands a caller over when the target does not say (see :mod:`.attended`).
"""

from __future__ import annotations

import ipaddress
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from voxline.errors import VoxlineError

ALLOW_ENV = "VOXLINE_SIP_ALLOW"
USERS_ENV = "VOXLINE_SIP_USERS"
REALM_ENV = "VOXLINE_SIP_REALM"
RTP_PORTS_ENV = "VOXLINE_SIP_RTP_PORTS"
PUBLIC_HOST_ENV = "VOXLINE_SIP_PUBLIC_HOST"
TLS_CERT_ENV = "VOXLINE_SIP_TLS_CERT"
TLS_KEY_ENV = "VOXLINE_SIP_TLS_KEY"
TLS_PORT_ENV = "VOXLINE_SIP_TLS_PORT"
REGISTER_ENV = "VOXLINE_SIP_REGISTER"
TRUNK_ENV = "VOXLINE_SIP_TRUNK"
TRANSFER_ENV = "VOXLINE_SIP_TRANSFER"

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class SipLimits:
    """Bounds on what peers can make us hold or do."""

    max_datagram_bytes: int = 8192  # SIP over UDP; anything bigger is dropped unread
    max_headers: int = 100
    max_pending_per_source: int = 64  # INVITEs ringing or being answered, per source IP
    invite_burst: int = 100  # new INVITEs a source may send at once...
    invite_rate_per_sec: float = 50.0  # ...and sustained
    auth_failures_per_minute: int = 20  # then the source is ignored for a minute
    max_sources_tracked: int = 4096  # the per-source tables never grow past this
    max_stream_message_bytes: int = 65536  # one SIP message on a TCP/TLS connection
    stream_message_secs: float = 10.0  # a started message (or TLS handshake) completes within this
    stream_idle_secs: float = 300.0  # a connection no call uses is closed after this quiet time
    max_connections: int = 2048
    max_connections_per_source: int = 256
    nonces_tracked: int = 8192  # issued digest nonces remembered (the oldest go stale first)


@dataclass(frozen=True)
class SipConfig:
    host: str = "127.0.0.1"
    port: int = 5060
    public_host: str | None = None  # advertised in Contact/SDP; default: host
    allow: tuple[Network, ...] = ()  # callers trusted without credentials
    users: Mapping[str, str] = field(default_factory=dict)  # digest user -> password
    realm: str = "voxline"
    rtp_ports: tuple[int, int] = (10000, 20000)
    media_timeout_secs: float = 30.0  # no RTP for this long: the call was dropped
    answer_delay_secs: float = 0.0  # ring this long before answering
    playout_delay_secs: float = 0.06  # how long after sending the far end plays audio
    inbound_batch_ms: int = 80  # caller audio per pipeline frame
    jitter_packets: int = 3  # reorder depth (20 ms packets)
    user_agent: str = "voxline"
    nonce_secret: bytes = field(default_factory=lambda: secrets.token_bytes(32))
    nonce_ttl_secs: float = 300.0
    tls_cert: str | None = None  # PEM certificate chain and key: SIP over TLS on tls_port
    tls_key: str | None = None
    tls_port: int = 5061
    tcp: bool = True  # also answer TCP on the UDP port
    session_expires_secs: int = 1800  # RFC 4028: the longest session interval we grant
    session_min_se: int = 90  # shorter asked intervals get 422 with this Min-SE
    retry_after_secs: int = 30  # in the 503 a draining server answers
    register: str | None = None  # sip:USER:PASSWORD@REGISTRAR[:PORT]
    register_expires_secs: int = 600  # asked for; the registrar's answer wins
    trunk: str | None = None  # sip:[USER:PASSWORD@]HOST[:PORT] for outbound calls
    ring_timeout_secs: float = 45.0  # an outbound call nobody answers is cancelled
    transfer: str = "blind"  # or "attended": consult the target first (per target: ";transfer=...")
    consult_ring_secs: float = 30.0  # an attended transfer's target that does not answer: caller back
    replace_wait_secs: float = 32.0  # then the consultation leg the caller did not replace is hung up
    limits: SipLimits = field(default_factory=SipLimits)

    @property
    def advertised_host(self) -> str:
        if self.public_host:
            return self.public_host
        return "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host

    def trusted(self, ip: str) -> bool:
        try:
            address = ipaddress.ip_address(ip)
        except ValueError:
            return False
        return any(address in net for net in self.allow)

    @classmethod
    def from_env(cls, bind: str, env: Mapping[str, str] | None = None, **overrides: object) -> SipConfig:
        """``bind`` is ``HOST:PORT`` (``--sip``); the rest from the environment."""
        env = os.environ if env is None else env
        host, port = parse_bind(bind)
        config = cls(
            host=host, port=port,
            public_host=env.get(PUBLIC_HOST_ENV) or None,
            allow=parse_allow(env.get(ALLOW_ENV, "")),
            users=parse_users(env.get(USERS_ENV, "")),
            realm=env.get(REALM_ENV) or "voxline",
            rtp_ports=parse_ports(env.get(RTP_PORTS_ENV) or "10000-20000"),
            tls_cert=env.get(TLS_CERT_ENV) or None,
            tls_key=env.get(TLS_KEY_ENV) or None,
            tls_port=_port(env.get(TLS_PORT_ENV) or "5061", TLS_PORT_ENV),
            register=env.get(REGISTER_ENV) or None,
            trunk=env.get(TRUNK_ENV) or None,
            transfer=(env.get(TRANSFER_ENV) or "blind").strip().lower(),
        )
        if config.transfer not in ("blind", "attended"):
            raise VoxlineError(f"{TRANSFER_ENV}: expected blind or attended")
        if bool(config.tls_cert) != bool(config.tls_key):
            raise VoxlineError(f"SIP over TLS needs both {TLS_CERT_ENV} and {TLS_KEY_ENV}")
        return replace(config, **overrides)  # type: ignore[arg-type]


def parse_bind(bind: str) -> tuple[str, int]:
    host, sep, port = bind.rpartition(":")
    if not sep:
        host, port = bind, "5060"
    return host.strip("[]") or "0.0.0.0", _port(port, f"--sip {bind!r}")


def _port(text: str, name: str) -> int:
    try:
        number = int(text)
    except ValueError:
        raise VoxlineError(f"{name}: expected a port number") from None
    if not 0 <= number < 65536:
        raise VoxlineError(f"{name}: port out of range")
    return number


def parse_allow(text: str) -> tuple[Network, ...]:
    nets: list[Network] = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        try:
            nets.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise VoxlineError(f"{ALLOW_ENV}: {item!r} is not an address or CIDR") from None
    return tuple(nets)


def parse_users(text: str) -> dict[str, str]:
    users: dict[str, str] = {}
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        user, sep, password = item.partition(":")
        if not sep or not user or not password:
            raise VoxlineError(f"{USERS_ENV}: expected user:password entries")
        users[user] = password
    return users


def parse_ports(text: str) -> tuple[int, int]:
    low, sep, high = text.partition("-")
    try:
        first, last = int(low), int(high if sep else low)
    except ValueError:
        raise VoxlineError(f"{RTP_PORTS_ENV}: expected MIN-MAX") from None
    if not (1024 <= first < last < 65536) or last - first < 2:
        raise VoxlineError(f"{RTP_PORTS_ENV}: {text!r} is not a usable range")
    return first, last

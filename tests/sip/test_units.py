"""The SIP package's pieces on their own: reorder buffer, digest auth, SDP, bounds, config."""

from __future__ import annotations

import hashlib

import pytest
from aiosipua import SipMessage

from voxline.errors import VoxlineError
from voxline.transports.sip.config import SipConfig, SipLimits, parse_ports, parse_users
from voxline.transports.sip.digest import DigestAuth, Verdict
from voxline.transports.sip.guard import SourceGuard
from voxline.transports.sip.jitter import LOST, NON_MEDIA, ReorderBuffer
from voxline.transports.sip.sdp import SdpError, build_answer, parse_offer


def test_reorder_buffer_orders_fills_and_drops() -> None:
    b = ReorderBuffer(depth=2)
    assert b.push(10, b"a") == [b"a"]
    assert b.push(12, b"c") == []  # 11 is missing: wait
    assert b.push(11, b"b") == [b"b", b"c"]  # reordered
    assert b.push(11, b"b") == []  # duplicate
    assert b.push(13, NON_MEDIA) == []  # a DTMF packet's sequence number: consumed silently
    assert b.push(15, b"e") == [] and b.push(16, b"f") == []
    assert b.push(17, b"g") == [LOST, b"e", b"f", b"g"]  # gave up on 14
    assert b.push(14, b"d") == []  # too late
    assert b.stats.reordered >= 1 and b.stats.late == 2 and b.stats.lost == 1


def test_reorder_buffer_wraps_and_restarts() -> None:
    b = ReorderBuffer(depth=2)
    assert b.push(65535, b"x") == [b"x"]
    assert b.push(0, b"y") == [b"y"]  # 16-bit wrap
    assert b.push(30000, b"z") == [b"z"]  # a jump: a new stream, not 30000 lost packets
    assert b.stats.resets == 1 and b.stats.lost == 0
    b.push(30002, b"q")
    assert b.flush() == [b"q"]  # the stream paused: play what is held


def _md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


def _authorization(auth: DigestAuth, *, user: str, password: str, nonce: str, uri: str = "sip:1@x",
                   nc: int = 1, qop: bool = True) -> str:
    ha1, ha2 = _md5(f"{user}:{auth.realm}:{password}"), _md5(f"INVITE:{uri}")
    if not qop:
        response = _md5(f"{ha1}:{nonce}:{ha2}")
        return (f'Digest username="{user}", realm="{auth.realm}", nonce="{nonce}", uri="{uri}", '
                f'response="{response}", algorithm=MD5')
    response = _md5(f"{ha1}:{nonce}:{nc:08x}:c0ffee:auth:{ha2}")
    return (f'Digest username="{user}", realm="{auth.realm}", nonce="{nonce}", uri="{uri}", '
            f'response="{response}", algorithm=MD5, cnonce="c0ffee", qop=auth, nc={nc:08x}')


def _nonce(challenge: str) -> str:
    return challenge.split('nonce="')[1].split('"')[0]


def test_digest_credentials_serve_once() -> None:
    auth = DigestAuth({"alice": "s3cret"}, realm="voxline", secret=b"k" * 32, max_nonces=2)
    nonce = _nonce(auth.challenge())
    first = _authorization(auth, user="alice", password="s3cret", nonce=nonce)
    assert auth.verify("INVITE", first).verdict is Verdict.OK
    assert auth.verify("INVITE", first).verdict is Verdict.REPLAYED  # the same Authorization again
    # RFC 2617 nonce reuse: a higher nc on the same nonce is a new request, a lower one is not.
    assert auth.verify("INVITE", _authorization(auth, user="alice", password="s3cret", nonce=nonce, nc=3)).ok
    assert auth.verify("INVITE", _authorization(auth, user="alice", password="s3cret", nonce=nonce,
                                                nc=2)).verdict is Verdict.REPLAYED
    # Without qop a nonce serves one request.
    plain = _nonce(auth.challenge())
    once = _authorization(auth, user="alice", password="s3cret", nonce=plain, qop=False)
    assert auth.verify("INVITE", once).ok and auth.verify("INVITE", once).verdict is Verdict.REPLAYED
    # Past the table's bound the oldest nonce is forgotten: stale, never accepted again.
    auth.challenge(), auth.challenge()
    fourth = _authorization(auth, user="alice", password="s3cret", nonce=nonce, nc=4)
    assert auth.verify("INVITE", fourth).verdict is Verdict.STALE


def test_digest_verifies_responses_and_nonces() -> None:
    now = [1_000_000.0]
    auth = DigestAuth({"alice": "s3cret"}, realm="voxline", secret=b"k" * 32, ttl_secs=60, clock=lambda: now[0])
    nonce = auth.challenge().split('nonce="')[1].split('"')[0]
    assert auth.verify("INVITE", None).verdict is Verdict.MISSING
    ok = auth.verify("INVITE", _authorization(auth, user="alice", password="s3cret", nonce=nonce))
    assert ok.verdict is Verdict.OK and ok.user == "alice"
    bad = _authorization(auth, user="alice", password="guess", nonce=nonce)
    assert auth.verify("INVITE", bad).verdict is Verdict.DENIED
    forged = _authorization(auth, user="alice", password="s3cret", nonce="5f5e100.deadbeef")
    assert auth.verify("INVITE", forged).verdict is Verdict.DENIED
    assert auth.verify("INVITE", "Digest \x00garbage=\"").verdict is Verdict.DENIED
    now[0] += 120  # the nonce expired: ask again with stale=true, not a refusal
    stale = auth.verify("INVITE", _authorization(auth, user="alice", password="s3cret", nonce=nonce))
    assert stale.verdict is Verdict.STALE and "stale=true" in auth.challenge(stale=True)


OFFER = ("v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n"
         "m=audio 4000 RTP/AVP 3 8 0 101\r\na=rtpmap:3 GSM/8000\r\na=rtpmap:101 telephone-event/8000\r\n"
         "a=sendrecv\r\n")


def test_sdp_offer_answer() -> None:
    offer = parse_offer(OFFER)
    assert offer.remote == ("192.0.2.1", 4000) and offer.payload_type == 8 and offer.dtmf_payload_type == 101
    answer = build_answer(offer, host="198.51.100.5", port=10002, session_id="1")
    audio = answer.media[0]
    assert audio.port == 10002 and audio.formats == ["8", "101"] and "sendrecv" in audio.attributes
    held = parse_offer(OFFER.replace("a=sendrecv", "a=sendonly"))
    assert "recvonly" in build_answer(held, host="h", port=1, session_id="1").media[0].attributes
    for bad, status in [(OFFER.replace("3 8 0 101", "3 18"), 488), (OFFER.replace("192.0.2.1", "example.com"), 488),
                        (OFFER.replace("4000", "0"), 488)]:
        with pytest.raises(SdpError) as e:
            parse_offer(bad)
        assert e.value.status == status


def test_source_guard_bounds() -> None:
    now = [0.0]
    guard = SourceGuard(SipLimits(invite_burst=2, invite_rate_per_sec=1.0, max_pending_per_source=3,
                                  auth_failures_per_minute=2, max_sources_tracked=10), clock=lambda: now[0])
    assert [guard.allow_invite("1.2.3.4") for _ in range(3)] == [True, True, False]
    now[0] += 1.0
    assert guard.allow_invite("1.2.3.4") and not guard.allow_invite("1.2.3.4")
    for _ in range(3):
        guard.begin("5.6.7.8")
    assert not guard.allow_invite("5.6.7.8")  # three calls ringing already
    for _ in range(3):
        guard.auth_failed("9.9.9.9")
    assert guard.blocked("9.9.9.9") and not guard.allow_invite("9.9.9.9")
    now[0] += 61
    assert not guard.blocked("9.9.9.9")
    for i in range(100):
        guard.allow_invite(f"10.0.0.{i}")
    assert len(guard._buckets) <= 10


def test_config_from_env() -> None:
    config = SipConfig.from_env("0.0.0.0:5080", {"VOXLINE_SIP_ALLOW": "10.0.0.0/8, 192.0.2.7",
                                                 "VOXLINE_SIP_USERS": "a:b,c:d", "VOXLINE_SIP_RTP_PORTS": "20000-20100",
                                                 "VOXLINE_SIP_PUBLIC_HOST": "203.0.113.9"})
    assert (config.host, config.port, config.rtp_ports) == ("0.0.0.0", 5080, (20000, 20100))
    assert config.trusted("10.1.2.3") and config.trusted("192.0.2.7") and not config.trusted("192.0.2.8")
    assert not config.trusted("not an ip") and config.users == {"a": "b", "c": "d"}
    assert config.advertised_host == "203.0.113.9"
    for bad in ("a", "a:", ":b"):
        with pytest.raises(VoxlineError):
            parse_users(bad)
    with pytest.raises(VoxlineError):
        parse_ports("100-50")
    with pytest.raises(VoxlineError):
        SipConfig.from_env("host:notaport", {})
    tls = SipConfig.from_env("0.0.0.0:5060", {"VOXLINE_SIP_TLS_CERT": "c.pem", "VOXLINE_SIP_TLS_KEY": "k.pem",
                                              "VOXLINE_SIP_TLS_PORT": "5071", "VOXLINE_SIP_TRUNK": "sip:10.0.0.9"})
    assert (tls.tls_cert, tls.tls_key, tls.tls_port, tls.trunk) == ("c.pem", "k.pem", 5071, "sip:10.0.0.9")
    with pytest.raises(VoxlineError, match="VOXLINE_SIP_TLS_KEY"):
        SipConfig.from_env("0.0.0.0:5060", {"VOXLINE_SIP_TLS_CERT": "c.pem"})
    with pytest.raises(VoxlineError, match="VOXLINE_SIP_TLS_PORT"):
        SipConfig.from_env("0.0.0.0:5060", {"VOXLINE_SIP_TLS_PORT": "99999"})


def test_sip_message_with_wrong_length_parses_without_raising() -> None:
    message = SipMessage.parse(b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 99\r\n\r\nshort")
    assert message.body == b"short"  # the wire layer answers this 400 before anyone uses it


def test_sip_accounts_from_env() -> None:
    from voxline.transports.sip.account import parse_account
    from voxline.transports.sip.register import refresh_after

    target = parse_account("sip:frontdesk:p%40ss@trunk.example.com:5080", "VOXLINE_SIP_REGISTER", credentials=True)
    assert (target.user, target.password, target.host, target.port) == ("frontdesk", "p@ss", "trunk.example.com", 5080)
    assert target.aor == "sip:frontdesk@trunk.example.com" and "p@ss" not in repr(target)
    assert target.uri("+15550001111") == "sip:+15550001111@trunk.example.com:5080"
    assert parse_account("sip:100:x@10.0.0.1", "X").registrar_uri == "sip:10.0.0.1"
    ip_trunk = parse_account("sip:10.0.0.9", "VOXLINE_SIP_TRUNK")
    assert ip_trunk.user is None and ip_trunk.auth() is None and ip_trunk.port == 5060
    with pytest.raises(VoxlineError, match="VOXLINE_SIP_REGISTER"):
        parse_account("sip:nopassword@host", "VOXLINE_SIP_REGISTER", credentials=True)
    with pytest.raises(VoxlineError, match="VOXLINE_SIP_TRUNK"):
        parse_account("http://trunk", "VOXLINE_SIP_TRUNK")
    assert refresh_after(600) == 570 and refresh_after(40) == 20


def _invite(*headers: str) -> SipMessage:
    head = "".join(f"{h}\r\n" for h in headers)
    return SipMessage.parse(("INVITE sip:1@x SIP/2.0\r\nVia: SIP/2.0/UDP 1.2.3.4;branch=z9hG4bKa\r\n"
                             "From: <sip:a@x>;tag=1\r\nTo: <sip:1@x>\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\n"
                             f"{head}Content-Length: 0\r\n\r\n").encode())


def test_session_timer_terms() -> None:
    from voxline.transports.sip.admission import Refused
    from voxline.transports.sip.timers import SessionTerms, session_terms

    config = SipConfig(session_expires_secs=1800, session_min_se=90)
    assert session_terms(_invite(), config) is None  # not asked: no timer
    # The caller supports timers: it refreshes, at most our interval, at least its Min-SE.
    assert session_terms(_invite("Supported: timer", "Session-Expires: 3600"), config) == SessionTerms(1800, False)
    assert session_terms(_invite("Supported: timer, 100rel"), config) == SessionTerms(1800, False)
    assert session_terms(_invite("Supported: timer", "Session-Expires: 600", "Min-SE: 2000"),
                         config) == SessionTerms(2000, False)
    assert session_terms(_invite("Supported: timer", "Session-Expires: 600;refresher=uas"),
                         config) == SessionTerms(600, True)
    # A proxy asked for a caller that cannot refresh: we do, with UPDATE -- unless it disallows UPDATE.
    assert session_terms(_invite("Session-Expires: 600"), config) == SessionTerms(600, True)
    assert session_terms(_invite("Session-Expires: 600", "Allow: INVITE, ACK, BYE"), config) is None
    too_short = session_terms(_invite("Supported: timer", "Session-Expires: 30"), config)
    assert isinstance(too_short, Refused) and too_short.status == 422 and too_short.headers == {"Min-SE": "90"}
    assert session_terms(_invite("Session-Expires: soon"), config) is None


def test_sip_account_transports() -> None:
    from voxline.transports.sip.account import parse_account

    tcp = parse_account("sip:alice:pw@trunk.example.com;transport=tcp", "VOXLINE_SIP_TRUNK")
    assert (tcp.transport, tcp.port, tcp.uri("+1555")) == ("TCP", 5060, "sip:+1555@trunk.example.com;transport=tcp")
    tls = parse_account("sips:pbx.example.com", "VOXLINE_SIP_TRUNK")
    assert (tls.transport, tls.port, tls.registrar_uri) == ("TLS", 5061, "sip:pbx.example.com:5061;transport=tls")
    with pytest.raises(VoxlineError):
        parse_account("sip:pbx.example.com;transport=sctp", "VOXLINE_SIP_TRUNK")
    from voxline.transports.sip.account import unreachable

    assert unreachable("127.0.0.1", None, tls) and not unreachable("198.51.100.7", tls)
    assert not unreachable("127.0.0.1", parse_account("sip:127.0.0.1:5070", "X"), None)

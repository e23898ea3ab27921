"""Session and visitor tokens, origins, ICE settings: the web transport's trust rules."""

from __future__ import annotations

import time

import pytest

from voxline.transports.web import tokens
from voxline.transports.web.config import WebConfig, WebConfigError, parse_ice_servers, parse_origins
from voxline.transports.web.ice import keep_loopback_candidates
from voxline.transports.web.tokens import SessionGrant
from voxline.web_settings import WebSettings, normalize_origin

SECRET = b"s3cret"


def grant(**changes: object) -> SessionGrant:
    values = {"session_id": "WSabc", "agent": "restaurant", "origin": "https://shop.example.com",
              "visitor": None, "expires": int(time.time()) + 60}
    values.update(changes)
    return SessionGrant(**values)  # type: ignore[arg-type]


def test_session_token_round_trip_and_binding() -> None:
    token = tokens.issue_session(SECRET, grant(visitor="cust-42"))
    got = tokens.verify_session(SECRET, token, agent="restaurant")
    assert got == grant(visitor="cust-42", expires=got.expires)
    assert tokens.verify_session(SECRET, token, agent="other") is None  # bound to the agent
    assert tokens.verify_session(b"other", token, agent="restaurant") is None
    body = token.split(".")[1]
    tampered = token.replace(body, body[:-2] + ("AA" if body[-2:] != "AA" else "BB"))
    assert tokens.verify_session(SECRET, tampered, agent="restaurant") is None
    assert tokens.verify_session(SECRET, None, agent="restaurant") is None
    assert tokens.verify_session(SECRET, "x" * 5000, agent="restaurant") is None


def test_session_token_expires() -> None:
    token = tokens.issue_session(SECRET, grant(expires=int(time.time()) - 1))
    assert tokens.verify_session(SECRET, token, agent="restaurant") is None


def test_visitor_token_from_the_host_site() -> None:
    expires = int(time.time()) + 600
    token = tokens.sign_visitor(SECRET, "customer.42@example.com", expires)
    assert tokens.verify_visitor(SECRET, token) == "customer.42@example.com"
    assert tokens.verify_visitor(None, token) is None  # no shared secret: anonymous
    assert tokens.verify_visitor(b"wrong", token) is None
    assert tokens.verify_visitor(SECRET, tokens.sign_visitor(SECRET, "x", int(time.time()) - 5)) is None
    far = int(time.time()) + tokens.MAX_VISITOR_TTL_SECS + 3600
    assert tokens.verify_visitor(SECRET, tokens.sign_visitor(SECRET, "x", far)) is None
    assert tokens.verify_visitor(SECRET, tokens.sign_visitor(SECRET, "bad id<script>", expires)) is None
    assert tokens.verify_visitor(SECRET, "not-a-token") is None


def test_origins_are_normalized() -> None:
    assert normalize_origin("HTTPS://Example.COM:443/") == "https://example.com"
    assert normalize_origin("http://127.0.0.1:8080") == "http://127.0.0.1:8080"
    for bad in ("example.com", "ftp://example.com", "https://example.com/path", "https://u:p@example.com"):
        with pytest.raises(ValueError):
            normalize_origin(bad)
    assert parse_origins("https://a.example, https://b.example:8443") == ("https://a.example",
                                                                          "https://b.example:8443")
    with pytest.raises(WebConfigError, match="VOXLINE_ALLOWED_ORIGINS"):
        parse_origins("https://a.example/page")
    assert WebSettings(allowed_origins="https://Shop.Example.com").allowed_origins == ("https://shop.example.com",)


def test_ice_servers_from_json(monkeypatch: pytest.MonkeyPatch) -> None:
    servers = parse_ice_servers('[{"urls": "turn:turn.example.com:3478", "username": "u", "credential": "p"},'
                                ' "stun:stun.example.com:3478"]')
    assert servers == [{"urls": "turn:turn.example.com:3478", "username": "u", "credential": "p"},
                       {"urls": "stun:stun.example.com:3478"}]
    for bad in ("{", '{"urls": "turn:x"}', '[{"urls": "http://x"}]', "[{}]"):
        with pytest.raises(WebConfigError, match="VOXLINE_ICE_SERVERS"):
            parse_ice_servers(bad)
    monkeypatch.setenv("VOXLINE_ICE_SERVERS", '["turn:t.example:3478"]')
    monkeypatch.setenv("VOXLINE_ALLOWED_ORIGINS", "https://www.example.com")
    monkeypatch.setenv("VOXLINE_WIDGET_SECRET", "shh")
    monkeypatch.setenv("VOXLINE_WEBRTC_HOST_ADDRESSES", "127.0.0.1")
    config = WebConfig.from_env()
    assert config.ice_servers == [{"urls": "turn:t.example:3478"}]
    assert config.allowed_origins == ("https://www.example.com",)
    assert config.widget_secret == b"shh" and config.host_addresses == ("127.0.0.1",)


def test_loopback_mode_keeps_only_loopback_candidates() -> None:
    sdp = "\r\n".join([
        "v=0", "m=audio 9 UDP/TLS/RTP/SAVPF 111",
        "a=candidate:1 1 udp 2113937151 127.0.0.1 50000 typ host",
        "a=candidate:2 1 udp 2113937151 192.0.2.2 50001 typ host",
        "a=candidate:3 1 udp 2113937151 3f1d0c2e-1.local 50002 typ host",
        "a=end-of-candidates",
    ])
    kept = keep_loopback_candidates(sdp)
    assert "127.0.0.1 50000" in kept and "192.0.2.2" not in kept and ".local" not in kept
    assert "a=end-of-candidates" in kept

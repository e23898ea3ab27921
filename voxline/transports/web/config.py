"""Deployment settings of the web transport, from the environment or from code.

- ``VOXLINE_ALLOWED_ORIGINS``: comma-separated origins that may embed every agent
  (``https://www.example.com,https://shop.example.com``); each agent adds its own
  in its spec (``web.allowed_origins``).
- ``VOXLINE_ICE_SERVERS``: JSON list of ICE servers, as in the browser's
  ``RTCPeerConnection`` config: ``[{"urls": "turn:turn.example.com:3478",
  "username": "u", "credential": "p"}]``. Default: none (host candidates only, which
  is enough when the server has a public address; use TURN behind NAT or in Kubernetes).
- ``VOXLINE_WIDGET_SECRET``: the secret the host site signs visitor tokens with
  (see :mod:`.tokens`); unset: every visitor is anonymous.
- ``VOXLINE_WEBRTC_HOST_ADDRESSES``: comma-separated local addresses offered as host
  candidates (default: every interface but loopback, aiortc's choice). Tests on one
  machine set ``127.0.0.1``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from voxline.web_settings import normalize_origin

ORIGINS_ENV = "VOXLINE_ALLOWED_ORIGINS"
ICE_ENV = "VOXLINE_ICE_SERVERS"
WIDGET_SECRET_ENV = "VOXLINE_WIDGET_SECRET"
HOST_ADDRESSES_ENV = "VOXLINE_WEBRTC_HOST_ADDRESSES"


class WebConfigError(ValueError):
    """A web setting in the environment is malformed; the message names the variable."""


def parse_origins(text: str | Sequence[str] | None, *, source: str = ORIGINS_ENV) -> tuple[str, ...]:
    items = text.split(",") if isinstance(text, str) else list(text or [])
    try:
        return tuple(normalize_origin(o) for o in items if o.strip())
    except ValueError as e:
        raise WebConfigError(f"{source}: {e}") from None


def parse_ice_servers(value: str | Sequence[Any] | None, *, source: str = ICE_ENV) -> list[dict[str, Any]]:
    """ICE servers as the browser takes them: ``[{"urls": ..., "username"?, "credential"?}]``."""
    if value is None or value == "":
        return []
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as e:
            raise WebConfigError(f"{source} is not JSON: {e}") from None
    if not isinstance(value, list):
        raise WebConfigError(f"{source} must be a JSON list of servers")
    servers = []
    for i, item in enumerate(value):
        if isinstance(item, str):
            item = {"urls": item}
        if not isinstance(item, dict) or "urls" not in item:
            raise WebConfigError(f"{source}[{i}] needs 'urls'")
        urls = item["urls"] if isinstance(item["urls"], list) else [item["urls"]]
        if not urls or not all(isinstance(u, str) and u.split(":", 1)[0] in ("stun", "stuns", "turn", "turns")
                                for u in urls):
            raise WebConfigError(f"{source}[{i}].urls must be stun:, stuns:, turn: or turns: URLs")
        server: dict[str, Any] = {"urls": urls if len(urls) > 1 else urls[0]}
        for key in ("username", "credential"):
            if key in item:
                server[key] = str(item[key])
        servers.append(server)
    return servers


@dataclass(frozen=True)
class WebConfig:
    allowed_origins: tuple[str, ...] = ()
    ice_servers: list[dict[str, Any]] = field(default_factory=list)
    widget_secret: bytes | None = None  # visitor tokens; None: anonymous visitors only
    host_addresses: tuple[str, ...] | None = None  # None: aiortc's default interfaces
    session_ttl_secs: float = 60.0  # a session token must be used this soon
    connect_timeout_secs: float = 15.0  # WebRTC offer to connected media
    ws_max_message_bytes: int = 64 * 1024

    @classmethod
    def from_env(cls, **overrides: Any) -> WebConfig:
        secret = os.environ.get(WIDGET_SECRET_ENV) or None
        hosts = os.environ.get(HOST_ADDRESSES_ENV, "")
        values: dict[str, Any] = {
            "allowed_origins": parse_origins(os.environ.get(ORIGINS_ENV, "")),
            "ice_servers": parse_ice_servers(os.environ.get(ICE_ENV)),
            "widget_secret": secret.encode() if secret else None,
            "host_addresses": tuple(h.strip() for h in hosts.split(",") if h.strip()) or None,
        }
        values.update(overrides)
        return cls(**values)

"""Which pages may start a session: the page's ``Origin`` against the allowed origins.

A browser sets ``Origin`` on every cross-origin POST and on every WebSocket handshake,
and a page's script cannot change it, so the check stops other sites' pages from
starting sessions (a script outside a browser can send any header: that is what the
per-IP rate limit and the caps are for). Allowed: the deployment's origins
(``VOXLINE_ALLOWED_ORIGINS``), the agent's ``web.allowed_origins``, and the server's
own origin (its ``/web/NAME`` demo page).
"""

from __future__ import annotations

from collections.abc import Iterable

from starlette.requests import HTTPConnection

from voxline.spec import AgentSpec
from voxline.web_settings import WebSettings, normalize_origin


def web_settings(spec: AgentSpec) -> WebSettings:
    """The spec's ``web:`` block; defaults while the spec has none."""
    settings = getattr(spec, "web", None)
    return settings if isinstance(settings, WebSettings) else WebSettings()


def own_origin(conn: HTTPConnection) -> str | None:
    host = conn.headers.get("host")
    if not host:
        return None
    scheme = {"ws": "http", "wss": "https"}.get(conn.url.scheme, conn.url.scheme)
    try:
        return normalize_origin(f"{scheme}://{host}")
    except ValueError:
        return None


def request_origin(conn: HTTPConnection) -> str | None:
    """The normalized ``Origin`` header, or None (absent, ``null`` or malformed)."""
    raw = conn.headers.get("origin")
    if not raw or raw == "null":
        return None
    try:
        return normalize_origin(raw)
    except ValueError:
        return None


def allowed_origins(deployment: Iterable[str], spec: AgentSpec) -> frozenset[str]:
    return frozenset(deployment) | frozenset(web_settings(spec).allowed_origins)


def origin_allowed(conn: HTTPConnection, deployment: Iterable[str], spec: AgentSpec) -> str | None:
    """The page's origin if it may start a session for ``spec``, else None."""
    origin = request_origin(conn)
    if origin is None:
        return None
    if origin == own_origin(conn) or origin in allowed_origins(deployment, spec):
        return origin
    return None

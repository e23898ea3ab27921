"""ASGI guard in front of every route: bounded bodies and well-formed Host headers.

Starlette reads a request body of any size into memory, and a ``Host`` with a bad
port makes URL building raise (a 500 with a traceback). This middleware answers both
with a clear 4xx before any route runs. Written as plain ASGI (no BaseHTTPMiddleware)
so websockets and streaming pass through untouched and cost nothing per message.
"""

from __future__ import annotations

import json
import re
from typing import Any

Scope = dict[str, Any]
Receive = Any
Send = Any

DEFAULT_MAX_BODY = 64 * 1024  # Twilio's webhooks are a few KB; our API bodies smaller
_HOST = re.compile(r"^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]{1,253})(:[0-9]{1,5})?\Z")


def valid_host(value: str) -> bool:
    match = _HOST.match(value)
    if not match:
        return False
    port = match.group(2)
    return port is None or 0 < int(port[1:]) < 65536


class HttpGuard:
    def __init__(self, app: Any, *, max_body_bytes: int = DEFAULT_MAX_BODY) -> None:
        self.app = app
        self.max_body = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        for name in (b"host", b"x-forwarded-host"):
            raw = headers.get(name)
            if raw is not None and not all(valid_host(h.strip()) for h in raw.decode("latin-1").split(",")):
                await self._refuse(scope, send, 400, f"invalid {name.decode()} header")
                return
        if scope["type"] == "websocket":
            await self.app(scope, receive, send)
            return
        length = headers.get(b"content-length")
        if length is not None:
            if not length.isdigit():
                await self._refuse(scope, send, 400, "invalid content-length")
                return
            if int(length) > self.max_body:
                await self._refuse(scope, send, 413, "request body too large")
                return
        await self.app(scope, self._bounded(receive), send)

    def _bounded(self, receive: Receive) -> Receive:
        """Chunked bodies have no length up front: count as they arrive."""
        seen = 0

        async def bounded() -> dict[str, Any]:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_body:
                    raise BodyTooLarge
            return message

        return bounded

    async def _refuse(self, scope: Scope, send: Send, status: int, detail: str) -> None:
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        body = json.dumps({"error": detail}).encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})


class BodyTooLarge(Exception):
    """A chunked body went over the limit (FastAPI turns it into a 413, see server.py)."""

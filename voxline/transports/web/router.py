"""FastAPI routes of the web widget, on the same call host as the phone.

- ``GET /widget.js``: the widget (``<script src=".../widget.js" data-agent="NAME">``).
- ``GET /web/NAME``: a demo page of our own for agent NAME.
- ``POST /web/NAME/session``: from a page on an allowed origin; rate-limited per IP,
  admitted under the agent's and tenant's caps (429 when busy); answers a session
  token, the ICE servers and where to connect. Another origin gets 403 and nothing.
- ``POST /web/NAME/offer`` (+ ``PATCH`` for trickled candidates): the SmallWebRTC
  offer, ``Authorization: Bearer TOKEN``; answers the SDP answer.
- ``WS /web/NAME/ws?token=TOKEN``: the WebSocket fallback.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from typing import Any

from fastapi import APIRouter, Request, Response, WebSocket
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.requests import HTTPConnection

from voxline.logsafe import clean
from voxline.pipelines.host import CallHost

from . import tokens
from .assets import BundleMissing, check_bundle, demo_page, widget_bundle
from .calls import SessionLedger, run_web_call
from .carriers import webrtc_transport, websocket_transport
from .config import WebConfig, parse_ice_servers, parse_origins
from .line import WebCall
from .origins import origin_allowed, own_origin, request_origin, web_settings
from .tokens import SessionGrant
from .webrtc import WebRTCSessions

log = logging.getLogger("voxline.web")

RATE_WINDOW_SECS = 60.0
MAX_BODY = 32 * 1024


class WebRouter(APIRouter):
    """The widget's routes; ``await router.close()`` when the app shuts down."""

    sessions: WebRTCSessions

    async def close(self) -> None:
        await self.sessions.close()


def web_router(
    host: CallHost,
    *,
    allowed_origins: Sequence[str] | str | None = None,
    ice_servers: Sequence[dict[str, Any]] | str | None = None,
    secret: bytes,
    config: WebConfig | None = None,
) -> WebRouter:
    """The web transport's routes on ``host``.

    ``allowed_origins`` and ``ice_servers`` default to ``VOXLINE_ALLOWED_ORIGINS`` and
    ``VOXLINE_ICE_SERVERS``; ``secret`` signs session tokens (``call_token.server_secret()``,
    shared by the workers); ``config`` carries the rest (visitor secret, host addresses).
    """
    cfg = config or WebConfig.from_env()
    overrides: dict[str, Any] = {}
    if allowed_origins is not None:
        overrides["allowed_origins"] = parse_origins(allowed_origins, source="allowed_origins")
    if ice_servers is not None:
        overrides["ice_servers"] = parse_ice_servers(ice_servers, source="ice_servers")
    if overrides:
        import dataclasses

        cfg = dataclasses.replace(cfg, **overrides)
    router = WebRouter()
    ledger = SessionLedger()

    async def run_webrtc(grant: SessionGrant, connection: Any) -> None:
        await run_web_call(host, grant, webrtc_transport(connection), WebCall.create(grant.session_id),
                           carrier="webrtc")

    router.sessions = sessions = WebRTCSessions(cfg, run_webrtc, ledger)
    check_bundle()

    def spec_for(agent: str) -> Any:
        spec = host.spec(agent)
        return spec if spec is not None and web_settings(spec).enabled else None

    def cors(origin: str | None, response: Response) -> Response:
        if origin:
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers["Vary"] = "Origin"
        return response

    def grant_of(conn: HTTPConnection, agent: str, token: str | None) -> SessionGrant | None:
        grant = tokens.verify_session(secret, token, agent=agent)
        if grant is None or request_origin(conn) != grant.origin:
            return None
        return grant

    def bearer(request: Request) -> str | None:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        return token.strip() if scheme.lower() == "bearer" else None

    async def json_body(request: Request) -> dict[str, Any] | None:
        raw = await request.body()
        if len(raw) > MAX_BODY:
            return None
        try:
            body = json.loads(raw or b"{}")
        except (json.JSONDecodeError, UnicodeDecodeError):
            return None
        return body if isinstance(body, dict) else None

    @router.get("/widget.js")
    async def widget_js() -> Response:
        try:
            return Response(widget_bundle(), media_type="text/javascript; charset=utf-8",
                            headers={"Cache-Control": "public, max-age=300",
                                     "Cross-Origin-Resource-Policy": "cross-origin"})
        except BundleMissing as e:
            log.error("- %s", e)
            return Response(f"/* {e} */\nconsole.error({json.dumps(str(e))});",
                            status_code=503, media_type="text/javascript; charset=utf-8")

    @router.get("/web/{agent}")
    async def demo(agent: str, request: Request) -> Response:
        spec = spec_for(agent)
        if spec is None:
            return HTMLResponse("<h1>No such agent</h1>", 404)
        page = demo_page(agent, web_settings(spec).title).replace("{origin}", own_origin(request) or "")
        return HTMLResponse(page, headers={"Cache-Control": "no-store"})

    @router.options("/web/{agent}/{endpoint}")
    async def preflight(agent: str, endpoint: str, request: Request) -> Response:
        spec = spec_for(agent)
        origin = origin_allowed(request, cfg.allowed_origins, spec) if spec is not None else None
        if origin is None or endpoint not in ("session", "offer"):
            return Response(status_code=403)
        return cors(origin, Response(status_code=204, headers={
            "Access-Control-Allow-Methods": "POST, PATCH",
            "Access-Control-Allow-Headers": "authorization, content-type",
            "Access-Control-Max-Age": "600",
        }))

    @router.post("/web/{agent}/session")
    async def session(agent: str, request: Request) -> Response:
        spec = spec_for(agent)
        if spec is None:
            return JSONResponse({"error": "unknown agent"}, 404)
        origin = origin_allowed(request, cfg.allowed_origins, spec)
        if origin is None:
            seen = request_origin(request)
            log.warning("- web session for %s refused: origin %s is not allowed", agent,
                        clean(seen or request.headers.get("origin") or "(none)", 100))
            # Readable by the refused page, so the widget can say why it cannot start.
            return cors(seen, JSONResponse({"error": "origin_not_allowed",
                                            "message": "This site may not start conversations with this "
                                                       "assistant."}, 403))
        ip = request.client.host if request.client else "-"
        settings = web_settings(spec)
        if not await host.live.hit_rate(spec.memory.tenant, f"web-session:{ip}", settings.sessions_per_minute,
                                        RATE_WINDOW_SECS):
            return cors(origin, JSONResponse({"error": "rate_limited", "message": "Too many conversations "
                                              "started from here. Please wait a minute."}, 429,
                                             headers={"Retry-After": str(int(RATE_WINDOW_SECS))}))
        body = await json_body(request)
        if body is None:
            return cors(origin, JSONResponse({"error": "invalid body"}, 400))
        visitor = tokens.verify_visitor(cfg.widget_secret, body.get("visitor_token"))
        if body.get("visitor_token") and visitor is None:
            log.info("- web session for %s: visitor token not valid; visitor is anonymous", agent)
        sid = tokens.new_session_id()
        refusal = await host.admit(sid, agent)
        if refusal is not None:
            return cors(origin, JSONResponse({"error": refusal, "message": host.limits.busy_message}, 429,
                                             headers={"Retry-After": "10"}))
        expires = int(time.time() + cfg.session_ttl_secs)
        grant = SessionGrant(session_id=sid, agent=agent, origin=origin, visitor=visitor, expires=expires)
        base = str(request.base_url).rstrip("/")
        ws_base = base.replace("https://", "wss://", 1).replace("http://", "ws://", 1)
        return cors(origin, JSONResponse({
            "session_id": sid, "token": tokens.issue_session(secret, grant),
            "expires_in": int(cfg.session_ttl_secs), "ice_servers": cfg.ice_servers,
            "offer_url": f"{base}/web/{agent}/offer", "ws_url": f"{ws_base}/web/{agent}/ws",
            "visitor": visitor is not None, "title": settings.title,
        }, headers={"Cache-Control": "no-store"}))

    @router.post("/web/{agent}/offer")
    async def offer(agent: str, request: Request) -> Response:
        origin = request_origin(request)
        grant = grant_of(request, agent, bearer(request))
        if grant is None:
            return cors(origin, JSONResponse({"error": "invalid or expired session token"}, 401))
        body = await json_body(request)
        if body is None:
            return cors(origin, JSONResponse({"error": "invalid body"}, 400))
        try:
            answer = await sessions.offer(grant, str(body.get("sdp") or ""), str(body.get("type") or ""),
                                          pc_id=body.get("pc_id") if isinstance(body.get("pc_id"), str) else None,
                                          restart=bool(body.get("restart_pc")))
        except ValueError as e:
            return cors(origin, JSONResponse({"error": str(e)}, 400))
        if answer is None:
            return cors(origin, JSONResponse({"error": "this session was already used"}, 409))
        return cors(origin, JSONResponse(answer))

    @router.patch("/web/{agent}/offer")
    async def candidates(agent: str, request: Request) -> Response:
        origin = request_origin(request)
        if grant_of(request, agent, bearer(request)) is None:
            return cors(origin, JSONResponse({"error": "invalid or expired session token"}, 401))
        body = await json_body(request) or {}
        items = body.get("candidates")
        if isinstance(body.get("pc_id"), str) and isinstance(items, list):
            await sessions.add_candidates(body["pc_id"], [c for c in items if isinstance(c, dict)])
        return cors(origin, Response(status_code=204))

    @router.websocket("/web/{agent}/ws")
    async def websocket(agent: str, websocket: WebSocket) -> None:
        grant = grant_of(websocket, agent, websocket.query_params.get("token"))
        if grant is None or spec_for(agent) is None:
            log.warning("- web socket for %s refused: no valid session token for its origin", clean(agent, 64))
            await websocket.close(code=1008)
            return
        sessions.cancel_pending(grant.session_id)  # the widget gave up on WebRTC
        if not ledger.take(grant.session_id):
            await websocket.close(code=1008)
            return
        await websocket.accept()
        try:
            await run_web_call(host, grant, websocket_transport(websocket), WebCall.create(grant.session_id),
                               carrier="websocket")
        finally:
            try:
                await websocket.close(code=1000)
            except RuntimeError:
                pass  # already closed

    return router

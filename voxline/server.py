"""The voxline server: one process, many agents, calls from every transport.

``create_app(agents_dir)`` loads the agents and ``routes.yaml`` (see
:mod:`voxline.routing`), starts a :class:`~voxline.pipelines.host.CallHost` on the
worker's shared resources, and mounts the transports on it:

- Twilio (when ``TWILIO_ACCOUNT_SID``/``TWILIO_AUTH_TOKEN`` are set, else the phone
  routes are off): ``POST /twilio/voice``, ``POST /twilio/answer``, ``WS /twilio/stream``,
  ``POST /twilio/status`` (see :mod:`voxline.transports.twilio.router`).
- ``POST /calls`` -- place an outbound call. ``Authorization: Bearer $VOXLINE_API_KEY``;
  body ``{"to": "+1555...", "agent": "restaurant", "from": optional,
  "machine_detection": true}``; answers 201 ``{"call_sid", "status", "agent"}``,
  429 when the agent or tenant is at its cap, 503 when this server is full.
- The voice widget (with the ``webrtc`` extra): ``GET /widget.js``, ``GET /web/NAME``,
  session tokens and the WebRTC offer / WebSocket fallback (see
  :mod:`voxline.transports.web`).
- ``GET /healthz`` -- ``{"status": "ok", "agents": [...], "active_calls": n}``.

``/docs`` and ``/openapi.json`` are served only with ``VOXLINE_DOCS=1``.
"""

from __future__ import annotations

import contextlib
import hmac
import logging
import os
import re
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, ValidationError

from voxline import logsafe
from voxline.errors import MissingSecretError, ProviderError
from voxline.http_guard import BodyTooLarge, HttpGuard
from voxline.logsafe import redact_number
from voxline.memory.live import LiveState, live_state_from_env
from voxline.pipelines.host import CallHost, ServicesFactory, default_services
from voxline.pipelines.limits import CallLimits
from voxline.processors.greeting import GreetingCache
from voxline.routing import ROUTES_FILE, RoutingTable, load_agents, load_routes
from voxline.spec import AgentSpec
from voxline.transports import call_token

log = logging.getLogger("voxline.server")

API_KEY_ENV = "VOXLINE_API_KEY"
AGENTS_DIR_ENV = "VOXLINE_AGENTS_DIR"
DOCS_ENV = "VOXLINE_DOCS"
TRUST_PROXY_ENV = "VOXLINE_TRUST_PROXY"
SIP_ENV = "VOXLINE_SIP"  # HOST:PORT for `voxline serve --sip`, read by each worker
SIP_SHARED_ENV = "VOXLINE_SIP_WORKERS"  # set by serve() when several workers may race for the port
_E164 = re.compile(r"^\+[1-9][0-9]{6,14}\Z")
_SIP = re.compile(r"^sip:[A-Za-z0-9._~+-]{1,64}@[A-Za-z0-9.-]{1,253}(:[0-9]{1,5})?\Z")


class OutboundCall(BaseModel):
    to: str = Field(min_length=3, max_length=300)
    agent: str = Field(min_length=1, max_length=64)
    from_: str | None = Field(None, alias="from", max_length=300)
    machine_detection: bool = True


def valid_address(value: str) -> bool:
    """A number we may dial: E.164, or a SIP URI. Twilio clients ("client:...") are not."""
    return bool(_E164.match(value) or _SIP.match(value))


def _flag(name: str) -> bool:
    return os.environ.get(name, "").lower() in ("1", "true", "yes")


def create_app(
    agents_dir: Path,
    *,
    twilio: Any = None,
    api_key: str | None = None,
    services: ServicesFactory | None = None,
    rest: Any = None,
    verify_stream_signature: bool = True,
    greeting_cache: GreetingCache | None = None,
    recording_dir: Path | None = None,
    database_url: str | None = None,
    remember: bool = True,
    stream_options: Mapping[str, Any] | None = None,
    limits: CallLimits | None = None,
    live: LiveState | None = None,
    preload: bool = False,
    docs: bool | None = None,
    owner: str | None = None,
    sip: str | None = None,
    platform: bool = False,
) -> FastAPI:
    """The voxline FastAPI app for the agents in ``agents_dir`` (see the module docstring).

    ``twilio`` defaults to :meth:`TwilioConfig.from_env` (no secrets: no phone routes);
    ``api_key`` to ``$VOXLINE_API_KEY`` (unset: ``POST /calls`` is refused);
    ``services(spec, sample_rate)`` builds each call's STT/LLM/TTS (default: from the
    spec, on the process's shared models) -- tests and benchmarks pass fakes. Calls are
    recorded in ``database_url`` (default ``$DATABASE_URL``, else SQLite
    ./var/voxline.db); ``remember`` off skips recall and summaries. ``live`` shares
    caps and call ownership between workers (default: Redis at ``$REDIS_URL``, else
    in process). ``preload`` loads every agent's local models at startup. ``owner``
    names this worker in the live state (default: host:pid). ``sip`` (``HOST:PORT``)
    also answers SIP calls over UDP for the numbers in ``routes.yaml``. ``platform``
    mounts the admin API, dashboard, /metrics, webhooks and graceful drain (on in
    ``voxline serve``; tests mount it with their own options).
    """
    agents_dir = Path(agents_dir)
    agents = load_agents(agents_dir)
    routes = load_routes(agents_dir, agents)
    key = api_key if api_key is not None else os.environ.get(API_KEY_ENV) or None
    host = CallHost(
        agents, transfer_targets=routes.transfer, services=services or default_services,
        greetings=greeting_cache, recording_dir=recording_dir, limits=limits or CallLimits.from_env(),
        live=live or live_state_from_env(), remember=remember, preload=preload, owner=owner,
    )
    phone = _phone(agents, routes, host, twilio=twilio, rest=rest, recording_dir=recording_dir,
                   verify_stream_signature=verify_stream_signature, stream_options=stream_options)

    web = _web(host)

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await host.start(database_url)
        sip_server = await _start_sip(host, routes, sip) if sip else None
        app.state.sip = sip_server
        try:
            yield
        finally:
            if sip_server is not None:
                await sip_server.close()
            if web is not None:
                await web.close()
            await host.close()
            if phone is not None and rest is None:
                await phone["rest"].aclose()

    show_docs = _flag(DOCS_ENV) if docs is None else docs
    app = FastAPI(title="voxline", lifespan=lifespan, docs_url="/docs" if show_docs else None,
                  redoc_url=None, openapi_url="/openapi.json" if show_docs else None)
    app.state.host = host
    app.state.phone = host  # the call host serves the phone routes
    if phone is not None:
        app.state.rest, app.state.config = phone["rest"], phone["config"]
        app.include_router(phone["router"])
    if web is not None:
        app.include_router(web)

    @app.exception_handler(BodyTooLarge)
    async def too_large(_request: Request, _exc: BodyTooLarge) -> JSONResponse:
        return JSONResponse({"error": "request body too large"}, 413)

    @app.get("/healthz")
    async def healthz() -> dict[str, Any]:
        return {"status": "draining" if host.draining else "ok", "agents": sorted(agents),
                "active_calls": host.active_calls}

    @app.post("/calls", status_code=201)
    async def calls(request: Request) -> JSONResponse:
        denied = _check_api_key(request, key)
        if denied is not None:
            return denied
        if phone is None:
            return JSONResponse({"error": "phone calls are off: TWILIO_ACCOUNT_SID is not set"}, 503)
        try:
            body = OutboundCall.model_validate_json(await request.body())
        except ValidationError as e:
            problems = [{"field": ".".join(map(str, err["loc"])), "problem": err["msg"]} for err in e.errors()]
            return JSONResponse({"error": "invalid body", "problems": problems}, 422)
        if body.agent not in agents:
            return JSONResponse({"error": "unknown agent"}, 404)
        from_ = body.from_ or routes.caller_id_for(body.agent)
        for field, value in (("to", body.to), ("from", from_)):
            if value is not None and not valid_address(value):
                return JSONResponse({"error": f"'{field}' must be an E.164 number or a sip: address"}, 422)
        if not from_:
            return JSONResponse({"error": f"no caller id for this agent: set outbound_from in "
                                 f"{ROUTES_FILE} or pass 'from'"}, 422)
        if host.active_calls >= host.limits.max_calls_per_worker or host.draining:
            return JSONResponse({"error": "this server is at capacity"}, 503, headers={"Retry-After": "5"})
        return await phone["place"](request, body, from_)

    if platform:
        _platform(app, host)
    return _guarded(app)


def _platform(app: FastAPI, host: CallHost) -> None:
    """The admin API (/api/v1), dashboard, /metrics and call events, with the
    ``platform`` extra; without it the server runs calls only (one log line)."""
    from voxline.errors import MissingExtraError

    try:
        from voxline.api import mount_platform

        mount_platform(app, host)
    except (MissingExtraError, ImportError) as e:
        log.info("- admin API and dashboard off: %s", e)


def _guarded(app: FastAPI) -> FastAPI:
    """Every request passes the HTTP guard; ``app.state`` etc. stay reachable."""
    app.add_middleware(HttpGuard)
    return app


async def _start_sip(host: CallHost, routes: RoutingTable, bind: str) -> Any:
    """The SIP endpoint. Workers share the HTTP port, not a UDP one: the first worker to
    bind it answers SIP, the others say so and serve HTTP only."""
    import errno

    from voxline.transports.sip import start_sip

    try:
        return await start_sip(host, routes.numbers, bind=bind)
    except OSError as e:
        if e.errno != errno.EADDRINUSE or not os.environ.get(SIP_SHARED_ENV):
            raise
        log.info("- SIP on %s is answered by another worker", logsafe.clean(bind, 64))
        return None


def _web(host: CallHost) -> Any:
    """The voice widget's routes (/widget.js, /web/NAME, sessions), or None without the
    ``webrtc`` extra (one log line)."""
    from voxline.errors import MissingExtraError

    try:
        from voxline.transports.web import web_router

        return web_router(host, secret=call_token.server_secret())
    except MissingExtraError as e:
        log.info("- web widget off: %s", e)
        return None


def _phone(agents: Mapping[str, AgentSpec], routes: RoutingTable, host: CallHost, *, twilio: Any,
           rest: Any, recording_dir: Path | None, verify_stream_signature: bool,
           stream_options: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The Twilio routes, or None (one log line) when the server has no Twilio secrets."""
    import dataclasses
    from types import MappingProxyType

    from voxline.transports.twilio.config import TwilioConfig

    try:
        config = twilio or TwilioConfig.from_env(routes.numbers)
    except MissingSecretError as e:
        log.info("- phone routes off: %s", e)
        return None
    if routes.numbers and not config.routes:
        config = dataclasses.replace(config, routes=MappingProxyType(dict(routes.numbers)))
    if recording_dir is None and config.recording_dir is not None:
        host.recording_dir = config.recording_dir
    from voxline.transports.twilio import TwilioRestClient
    from voxline.transports.twilio.rest import MachineDetection
    from voxline.transports.twilio.router import CallRefused, place_outbound_call, twilio_router
    from voxline.transports.twilio.signature import public_base

    rest = rest or TwilioRestClient(config.account_sid, config.auth_token, base_url=config.api_base_url)
    from voxline.orchestration.tasks import TwilioDialer

    # Agents' outbound task calls ("call the restaurant and book") go out over this account.
    host.dialer = TwilioDialer(host, rest, public_base_url=config.public_base_url or "",
                               caller_id=routes.caller_id_for)
    router = twilio_router(config, host, rest=rest, secret=call_token.server_secret(),
                           verify_stream_signature=verify_stream_signature,
                           session_options=dict(stream_options or {}))

    async def place(request: Request, body: OutboundCall, from_: str) -> JSONResponse:
        voicemail = agents[body.agent].phone.voicemail
        detection = None
        if body.machine_detection and voicemail.action != "continue":
            detection = MachineDetection(mode=voicemail.detection_mode,
                                         timeout_secs=voicemail.detection_timeout_secs)
        try:
            sid = await place_outbound_call(
                host=host, rest=rest, to=body.to, from_=from_, agent=body.agent,
                public_base_url=public_base(request, config), machine_detection=detection,
            )
        except ProviderError as e:
            log.warning("- outbound call to %s failed: %s", redact_number(body.to), logsafe.clean(e))
            return JSONResponse({"error": "twilio refused the call", "retryable": e.retryable}, 502)
        except CallRefused as e:  # nothing was placed (or it was hung up before it rang)
            status = 503 if e.reason == "draining" else 429
            return JSONResponse({"error": f"agent or tenant at its call cap ({e.reason})"}, status)
        return JSONResponse({"call_sid": sid, "status": "queued", "agent": body.agent}, 201)

    return {"config": config, "rest": rest, "router": router, "place": place}


def _check_api_key(request: Request, key: str | None) -> JSONResponse | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        return JSONResponse({"error": "missing API key"}, 401,
                            headers={"WWW-Authenticate": "Bearer"})
    if key is None:
        log.warning("- POST /calls refused: %s is not set on the server", API_KEY_ENV)
        return JSONResponse({"error": "outbound calls are disabled on this server"}, 403)
    if not hmac.compare_digest(token.strip().encode(), key.encode()):
        log.warning("- POST /calls refused: wrong API key")
        return JSONResponse({"error": "invalid API key"}, 403)
    return None


# -- entry points for the CLI ---------------------------------------------------------


def quiet_pipecat_logs(level: str = "INFO") -> None:
    """Kept for callers of the old name: configure logging in this process."""
    logsafe.install(level)


def app_from_env() -> FastAPI:
    """Factory for uvicorn workers: each worker configures its own logging and loads
    its models once, at startup, off the event loop."""
    logsafe.install(os.environ.get("VOXLINE_LOG_LEVEL", "INFO"))
    with contextlib.suppress(ImportError):
        from voxline.observability.logs import install_from_env

        install_from_env()  # VOXLINE_LOG_FORMAT=json
    return create_app(Path(os.environ[AGENTS_DIR_ENV]), preload=True, platform=True,
                      sip=os.environ.get(SIP_ENV) or None)


def serve(agents_dir: Path, host: str = "127.0.0.1", port: int = 8080, *,
          workers: int | None = None, log_level: str = "info", sip: str | None = None) -> None:
    """Run the server (blocking). ``workers`` processes share the port (default: one per core).

    Calls share nothing between processes but the store and the live state (Redis),
    so each core runs its own event loop; the kernel spreads new connections across them.
    """
    import uvicorn

    agents_dir = Path(agents_dir).resolve()
    load_routes(agents_dir, load_agents(agents_dir))  # fail fast, in the parent, on a bad folder
    os.environ[AGENTS_DIR_ENV] = str(agents_dir)
    os.environ["VOXLINE_LOG_LEVEL"] = log_level.upper()
    call_token.server_secret()  # one secret for every worker (exported to their environment)
    n = workers if workers is not None else (os.cpu_count() or 1)
    from voxline.integrations.providers.local.shared import share_cores

    share_cores(n)  # each worker's local models get their share of the cores, not all of them
    if n > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        import tempfile  # /metrics adds up every worker's counters (prometheus_client multiprocess)

        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="voxline-metrics-")
    if sip:
        os.environ[SIP_ENV] = sip
        if n > 1:
            os.environ[SIP_SHARED_ENV] = "1"
    logsafe.install(log_level)
    if n > 1 and not os.environ.get("REDIS_URL"):
        log.warning("- %d workers without REDIS_URL: call caps, rate limits and one-use web session "
                    "tokens are kept per worker (set REDIS_URL to share them)", n)
    trust_proxy = _flag(TRUST_PROXY_ENV)
    # Twilio sends small JSON messages 50 times a second per call: compressing them
    # (permessage-deflate, on by default) costs more CPU than it saves bandwidth.
    uvicorn.run("voxline.server:app_from_env", factory=True, host=host, port=port, workers=n,
                ws="websockets", ws_per_message_deflate=False, log_level=log_level,
                ws_max_size=64 * 1024, proxy_headers=trust_proxy,
                forwarded_allow_ips=os.environ.get("VOXLINE_TRUSTED_PROXIES", "127.0.0.1") if trust_proxy else None,
                server_header=False)


async def place_call(to: str, agent: str, *, server: str = "http://127.0.0.1:8080",
                     from_: str | None = None, machine_detection: bool = True,
                     api_key: str | None = None, timeout_secs: float = 15.0) -> dict[str, Any]:
    """Ask a running voxline server to place an outbound call; returns its JSON answer.

    The server owns the Twilio credentials, the call record and the stream, so the CLI
    only needs the server's URL and ``$VOXLINE_API_KEY``. Raises ProviderError with the
    server's message on failure (retryable for 5xx).
    """
    import httpx

    key = api_key or os.environ.get(API_KEY_ENV)
    if not key:
        from voxline.errors import MissingSecretError

        raise MissingSecretError(f"{API_KEY_ENV} is not set (needed to place calls)")
    body: dict[str, Any] = {"to": to, "agent": agent, "machine_detection": machine_detection}
    if from_:
        body["from"] = from_
    async with httpx.AsyncClient(timeout=timeout_secs) as client:
        try:
            response = await client.post(server.rstrip("/") + "/calls", json=body,
                                         headers={"Authorization": f"Bearer {key}"})
        except httpx.HTTPError as e:
            raise ProviderError(f"cannot reach voxline server at {server}: {e}", retryable=True) from e
    if response.status_code != 201:
        raise ProviderError.from_status(response.status_code, response.text[:300])
    return response.json()


__all__ = ["RoutingTable", "create_app", "load_agents", "load_routes", "place_call", "serve"]

"""The voxline server: one process, many agents, phone calls over Twilio.

``create_app(agents_dir)`` loads every ``*/agent.yaml`` under ``agents_dir`` (an agent
is known by its ``name``) and the routing table ``agents_dir/routes.yaml``::

    # Dialed number (E.164 or sip:...) -> agent name. Spaces/dashes are ignored.
    numbers:
      "+1 555 000 1111": restaurant
    # Optional, per agent: where ``transfer_call`` may send the caller, by label.
    # The model only ever picks a label, never a number.
    transfer:
      restaurant: {front desk: "+15550002222", manager: "sip:manager@pbx.example.com"}
    # Optional, per agent: caller id for outbound calls. Default: the first number
    # that routes to the agent.
    outbound_from:
      restaurant: "+15550001111"

Routes:

- ``POST /twilio/voice``, ``WS /twilio/stream``, ``POST /twilio/status`` (see
  :func:`voxline.transports.twilio.twilio_router`); each stream runs a
  :class:`~voxline.pipelines.session.CallSession` of the routed agent.
- ``POST /calls`` -- place an outbound call. ``Authorization: Bearer $VOXLINE_API_KEY``;
  body ``{"to": "+1555...", "agent": "restaurant", "from": optional,
  "machine_detection": true}``; answers 201 ``{"call_sid", "status", "agent"}``.
- ``GET /healthz`` -- ``{"status": "ok", "agents": [...], "active_calls": n}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import os
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request, WebSocket
from fastapi.responses import JSONResponse
from pipecat.adapters.llm.schemas.tools_schema import ToolsSchema
from pydantic import BaseModel, Field

from voxline.errors import ProviderError, SpecError
from voxline.pipelines.builder import Extensions, Services
from voxline.pipelines.call_memory import CallMemory, MemoryRuntime, llm_summarizer
from voxline.pipelines.session import CallSession
from voxline.processors.call_log import ToolCallRecord
from voxline.spec import AgentSpec, load_spec, load_yaml
from voxline.transports.twilio import (
    CallRecords,
    InMemoryCallRecords,
    TwilioCall,
    TwilioConfig,
    TwilioRestClient,
    place_outbound_call,
    redact_number,
    twilio_router,
)
from voxline.transports.twilio.config import normalize_number
from voxline.transports.twilio.greeting import GreetingCache
from voxline.transports.twilio.recording import ConsentPrompt, TwoChannelRecorder
from voxline.transports.twilio.signature import public_base
from voxline.transports.twilio.voicemail import is_machine, on_answered_by

log = logging.getLogger("voxline.server")

ROUTES_FILE = "routes.yaml"
PHONE_RATE = 8000
DEFAULT_RECORDING_DIR = Path("var/recordings")
API_KEY_ENV = "VOXLINE_API_KEY"
AGENTS_DIR_ENV = "VOXLINE_AGENTS_DIR"

ServicesFactory = Callable[[AgentSpec], Services]


@dataclass(frozen=True)
class RoutingTable:
    numbers: Mapping[str, str] = field(default_factory=dict)  # dialed number -> agent
    transfer: Mapping[str, Mapping[str, str]] = field(default_factory=dict)  # agent -> label -> target
    outbound_from: Mapping[str, str] = field(default_factory=dict)  # agent -> caller id

    def caller_id_for(self, agent: str) -> str | None:
        if agent in self.outbound_from:
            return self.outbound_from[agent]
        return next((n for n, a in self.numbers.items() if a == agent and not n.startswith("sip:")), None)


def load_agents(agents_dir: Path) -> dict[str, AgentSpec]:
    """Every ``*/agent.yaml`` under ``agents_dir`` (and ``agents_dir/agent.yaml``), by name."""
    agents: dict[str, AgentSpec] = {}
    problems: list[tuple[str, str]] = []
    paths = sorted({*agents_dir.glob("agent.yaml"), *agents_dir.glob("*/agent.yaml")})
    for path in paths:
        try:
            spec = load_spec(path)
        except SpecError as e:
            problems += [(f"{path}: {where}", why) for where, why in e.problems]
            continue
        if spec.name in agents:
            problems.append((str(path), f"agent name {spec.name!r} is used twice"))
        agents[spec.name] = spec
    if problems:
        raise SpecError(problems)
    if not agents:
        raise SpecError([(str(agents_dir), "no */agent.yaml found")])
    return agents


def load_routes(agents_dir: Path, agents: Mapping[str, AgentSpec]) -> RoutingTable:
    """Read ``routes.yaml`` (absent: no inbound numbers). Unknown agents are errors."""
    path = agents_dir / ROUTES_FILE
    if not path.exists():
        return RoutingTable()
    data = load_yaml(path) or {}
    problems: list[tuple[str, str]] = []
    if not isinstance(data, dict):
        raise SpecError([(str(path), "expected a mapping with 'numbers'")])
    unknown = set(data) - {"numbers", "transfer", "outbound_from"}
    problems += [(f"{path}: {k}", "unknown key") for k in sorted(unknown)]

    def mapping(key: str) -> dict[str, Any]:
        value = data.get(key) or {}
        if not isinstance(value, dict):
            problems.append((f"{path}: {key}", "expected a mapping"))
            return {}
        return {str(k): v for k, v in value.items()}

    numbers = {normalize_number(n): str(a) for n, a in mapping("numbers").items()}
    transfer: dict[str, dict[str, str]] = {}
    for agent, targets in mapping("transfer").items():
        if not isinstance(targets, dict):
            problems.append((f"{path}: transfer.{agent}", "expected {label: number}"))
            continue
        transfer[agent] = {str(label): str(target) for label, target in targets.items()}
    outbound = {agent: str(number) for agent, number in mapping("outbound_from").items()}
    for where, agent in [*((f"numbers.{n}", a) for n, a in numbers.items()),
                         *((f"transfer.{a}", a) for a in transfer),
                         *((f"outbound_from.{a}", a) for a in outbound)]:
        if agent not in agents:
            problems.append((f"{path}: {where}", f"unknown agent {agent!r}; known: {', '.join(sorted(agents))}"))
    if problems:
        raise SpecError(problems)
    return RoutingTable(numbers=numbers, transfer=transfer, outbound_from=outbound)


class OutboundCall(BaseModel):
    to: str = Field(min_length=3, max_length=256)
    agent: str
    from_: str | None = Field(None, alias="from")
    machine_detection: bool = True


class PhoneCalls:
    """Runs each streamed call as a CallSession of its agent."""

    def __init__(
        self,
        agents: Mapping[str, AgentSpec],
        routes: RoutingTable,
        *,
        services: ServicesFactory,
        greetings: GreetingCache,
        recording_dir: Path | None,
        dtmf_timeout_secs: float = 1.5,
    ) -> None:
        self.agents = agents
        self.routes = routes
        self.services = services
        self.greetings = greetings
        self.recording_dir = recording_dir
        self.dtmf_timeout_secs = dtmf_timeout_secs
        self.active: dict[str, CallSession] = {}
        self.calls: dict[str, TwilioCall] = {}  # call sid -> live stream
        # AMD verdicts that arrived before their stream started (bounded).
        self.answered_by: dict[str, str] = {}
        self._call_tasks: dict[str, set[asyncio.Task[Any]]] = {}
        self.results: dict[str, Any] = {}  # call sid -> CallResult (bounded)
        # Opened by the app's lifespan: the call store, recorder and recall for every call.
        self.memory: MemoryRuntime | None = None
        self._remembering: set[asyncio.Task[Any]] = set()

    async def open_memory(self, database_url: str | None) -> None:
        self.memory = await MemoryRuntime.open(database_url)
        swept = await self.memory.store.sweep_abandoned()
        if swept:
            log.warning("- closed %d call(s) left open by a process that died", len(swept))

    async def settle(self) -> None:
        """Wait until ended calls are fully written (summaries and facts included)."""
        await asyncio.gather(*self._remembering, return_exceptions=True)
        if self.memory is not None:
            await self.memory.recorder.flush()

    async def close(self) -> None:
        await self.settle()
        if self.memory is not None:
            await self.memory.close()
            self.memory = None

    async def _open_call_memory(self, spec: AgentSpec, call: TwilioCall) -> CallMemory | None:
        if self.memory is None:
            return None
        info = call.info
        # The caller is whoever is not the agent: the dialed number on outbound calls.
        caller = info.dialed if info.direction == "outbound" else info.caller
        return await CallMemory.open(
            runtime=self.memory, agent=spec, call_id=call.call_id, caller_key=caller,
            channel="phone", direction=info.direction, from_=info.caller, to=info.dialed,
        )

    async def on_stream(self, websocket: WebSocket, call: TwilioCall) -> None:
        spec = self.agents.get(call.info.agent or "")
        if spec is None:
            log.warning("%s stream names unknown agent %r", call.call_id, call.info.agent)
            call.end_reason = "failed"
            return
        memory = await self._open_call_memory(spec, call)
        session = self.session_for(spec, call, memory)
        self.active[call.call_id] = session
        self.calls[call.call_id] = call
        early = self.answered_by.pop(call.call_id, None)
        if early is not None:
            self._spawn_for(call.call_id, self._on_machine(call.call_id, early))
        result = None
        try:
            result = await session.run()
        finally:
            self.active.pop(call.call_id, None)
            self.calls.pop(call.call_id, None)
            tasks = self._call_tasks.pop(call.call_id, set())
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if memory is not None:  # summaries take an LLM pass: off the call's path
                task = asyncio.create_task(memory.finish(
                    result, summarize=llm_summarizer(session.services.llm)))
                self._remembering.add(task)
                task.add_done_callback(self._remembering.discard)
        self.results[call.call_id] = result
        while len(self.results) > 1000:
            self.results.pop(next(iter(self.results)))
        log.info("%s call ended: %s after %d turns", call.call_id, result.end_reason, len(result.turns))

    def _spawn_for(self, call_sid: str, coro: Any) -> None:
        """A task that belongs to one call: cancelled when the call ends."""
        task = asyncio.create_task(coro)
        tasks = self._call_tasks.setdefault(call_sid, set())
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    async def on_status(self, call_sid: str, state: str, answered_by: str | None) -> None:
        """Twilio's status / async-AMD callback: act on an answering machine."""
        if not is_machine(answered_by):
            return
        assert answered_by is not None
        if call_sid in self.calls:
            self._spawn_for(call_sid, self._on_machine(call_sid, answered_by))
        elif state not in ("completed", "failed", "busy", "no-answer", "canceled"):
            self.answered_by[call_sid] = answered_by  # the stream is not up yet
            while len(self.answered_by) > 1000:
                self.answered_by.pop(next(iter(self.answered_by)))

    async def _on_machine(self, call_sid: str, answered_by: str) -> None:
        call, session = self.calls.get(call_sid), self.active.get(call_sid)
        if call is None or session is None:
            return
        try:
            await on_answered_by(call, session.spec.phone.voicemail, answered_by, session.worker.queue_frame)
        except Exception:
            log.exception("%s answering-machine handling failed", call_sid)

    def session_for(self, spec: AgentSpec, call: TwilioCall,
                    memory: CallMemory | None = None) -> CallSession:
        services = self.services(spec)
        recording = spec.phone.recording
        # Caller audio is needed up to the user aggregator (VAD, turns), and by the
        # recorder after the output; without a recorder, it stops at the intercept.
        intercept, replay = self.greetings.processors(spec.name, spec.greeting,
                                                      drop_input_audio=not recording.enabled)
        after_output: list[Any] = []
        before_tts: list[Any] = [intercept]
        if recording.enabled:
            directory = self.recording_dir or DEFAULT_RECORDING_DIR
            after_output.append(TwoChannelRecorder(directory, call.call_id).processor)
            if recording.consent:
                before_tts.insert(0, ConsentPrompt(recording.consent, name=f"Consent#{call.call_id}"))
        extensions = Extensions(
            before_llm=[call.dtmf_aggregator(self.dtmf_timeout_secs)],
            before_tts=before_tts,
            before_output=[replay, call.heard.observer],
            after_output=[*after_output, call.heard.gate],
        )
        session = CallSession(
            spec, call.transport, call_id=call.call_id, caller_id=call.info.caller,
            services=services, extensions=extensions,
            audio_in_sample_rate=PHONE_RATE, audio_out_sample_rate=PHONE_RATE,
            extra_context=memory.extra_context if memory else None,
            on_turn=memory.on_turn if memory else None,
        )
        self._wire_tools(spec, session, call)
        return session

    def _wire_tools(self, spec: AgentSpec, session: CallSession, call: TwilioCall) -> None:
        """Phone versions of the built-in tools: act over Twilio REST once the words were heard.

        The builder registered ``end_call`` (pipeline end only); registering again
        replaces it. ``transfer_call`` is added to the advertised tools here.
        """
        control = call.control
        control.transfer_targets = dict(self.routes.transfer.get(spec.name, {}))

        async def on_end(reason: str) -> None:
            await session.end(reason)

        def tool_log(name: str, arguments: dict[str, Any], result: Any) -> None:
            session.log.tool_call(ToolCallRecord(name=name, arguments=arguments, result=result))

        control.on_end, control.tool_log = on_end, tool_log
        handlers = {t.handler for t in spec.tools}
        llm = session.services.llm
        if "builtin:end_call" in handlers:
            llm.register_function("end_call", control.end_call, cancel_on_interruption=True)
        if "builtin:transfer_call" in handlers:
            llm.register_function("transfer_call", control.transfer_call, cancel_on_interruption=True)
            tools = session.context.tools
            schemas = list(tools.standard_tools) if isinstance(tools, ToolsSchema) else []
            if not any(s.name == "transfer_call" for s in schemas):
                session.context.set_tools(ToolsSchema(standard_tools=[*schemas, control.transfer_schema()]))


def create_app(
    agents_dir: Path,
    *,
    twilio: TwilioConfig | None = None,
    api_key: str | None = None,
    services: ServicesFactory | None = None,
    records: CallRecords | None = None,
    rest: TwilioRestClient | None = None,
    verify_stream_signature: bool = True,
    greeting_cache: GreetingCache | None = None,
    recording_dir: Path | None = None,
    database_url: str | None = None,
    remember: bool = True,
    stream_options: Mapping[str, Any] | None = None,
) -> FastAPI:
    """The voxline FastAPI app for the agents in ``agents_dir`` (see the module docstring).

    ``twilio`` defaults to :meth:`TwilioConfig.from_env` with the routing table's
    numbers; ``api_key`` to ``$VOXLINE_API_KEY`` (unset: ``POST /calls`` is refused);
    ``services`` builds each call's STT/LLM/TTS (default: from the spec) -- tests and
    benchmarks pass fakes. Calls are recorded and callers remembered in ``database_url``
    (default ``$DATABASE_URL``, else SQLite ./var/voxline.db) unless ``remember`` is off.
    ``stream_options`` tune every stream (:meth:`TwilioCall.create` keywords, e.g.
    ``max_unplayed_secs``, ``mark_interval_secs``). Agents that enable recording write
    ``<call sid>.wav`` under ``recording_dir`` (default ``./var/recordings``).
    """
    agents_dir = Path(agents_dir)
    agents = load_agents(agents_dir)
    routes = load_routes(agents_dir, agents)
    config = twilio or TwilioConfig.from_env(routes.numbers)
    if twilio is not None and routes.numbers and not config.routes:
        from types import MappingProxyType

        config = _replace(config, routes=MappingProxyType(dict(routes.numbers)))
    key = api_key if api_key is not None else os.environ.get(API_KEY_ENV) or None
    records = records or InMemoryCallRecords()
    rest = rest or TwilioRestClient(config.account_sid, config.auth_token, base_url=config.api_base_url)
    phone = PhoneCalls(
        agents, routes, services=services or Services.from_spec,
        greetings=greeting_cache or GreetingCache(),
        recording_dir=recording_dir or config.recording_dir,
    )

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if remember:
            await phone.open_memory(database_url)
        try:
            yield
        finally:
            await phone.close()

    app = FastAPI(title="voxline", lifespan=lifespan)
    app.state.phone = phone
    app.state.records = records
    app.state.rest = rest
    app.state.config = config
    app.include_router(twilio_router(config, phone.on_stream, records=records, rest=rest,
                                     on_status=phone.on_status, session_options=dict(stream_options or {}),
                                     verify_stream_signature=verify_stream_signature))

    @app.get("/healthz")
    async def healthz() -> dict[str, Any]:
        return {"status": "ok", "agents": sorted(agents), "active_calls": len(phone.active)}

    @app.post("/calls", status_code=201)
    async def calls(request: Request) -> JSONResponse:
        denied = _check_api_key(request, key)
        if denied is not None:
            return denied
        try:
            body = OutboundCall.model_validate(await request.json())
        except ValueError as e:
            return JSONResponse({"error": "invalid body", "detail": str(e)[:500]}, 422)
        if body.agent not in agents:
            return JSONResponse({"error": f"unknown agent {body.agent!r}"}, 404)
        from_ = body.from_ or routes.caller_id_for(body.agent)
        if not from_:
            return JSONResponse({"error": f"no caller id for agent {body.agent!r}: set "
                                 f"outbound_from in {ROUTES_FILE} or pass 'from'"}, 422)
        try:
            sid = await place_outbound_call(
                config=config, rest=rest, records=records, to=body.to, from_=from_,
                agent=body.agent, public_base_url=public_base(request, config),
                machine_detection=_machine_detection(agents[body.agent]) if body.machine_detection else None,
            )
        except ProviderError as e:
            log.warning("- outbound call to %s failed: %s", redact_number(body.to), e)
            return JSONResponse({"error": "twilio refused the call", "retryable": e.retryable}, 502)
        return JSONResponse({"call_sid": sid, "status": "queued", "agent": body.agent}, 201)

    return app


def _machine_detection(spec: AgentSpec) -> Any:
    """Async AMD as the agent's ``phone.voicemail`` asks: wait for the beep to leave a
    message, answer as soon as possible to hang up, none to carry on regardless."""
    from voxline.transports.twilio import MachineDetection

    voicemail = spec.phone.voicemail
    if voicemail.action == "continue":
        return None
    return MachineDetection(mode=voicemail.detection_mode, timeout_secs=voicemail.detection_timeout_secs)


def _replace(config: TwilioConfig, **changes: Any) -> TwilioConfig:
    import dataclasses

    return dataclasses.replace(config, **changes)


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
    """Pipecat logs every processor's setup at DEBUG through loguru; at a hundred calls
    that is a measurable share of the event loop. Keep INFO and above."""
    import sys

    from loguru import logger as loguru_logger

    loguru_logger.remove()
    loguru_logger.add(sys.stderr, level=level.upper())


def app_from_env() -> FastAPI:
    """Factory for uvicorn workers: reads the agents folder from ``$VOXLINE_AGENTS_DIR``."""
    return create_app(Path(os.environ[AGENTS_DIR_ENV]))


def serve(agents_dir: Path, host: str = "127.0.0.1", port: int = 8080, *,
          workers: int | None = None, log_level: str = "info") -> None:
    """Run the server (blocking). ``workers`` processes share the port (default: one per core).

    Calls share nothing between processes, so each core runs its own event loop; the
    kernel spreads new connections across them.
    """
    import uvicorn

    agents_dir = Path(agents_dir).resolve()
    load_routes(agents_dir, load_agents(agents_dir))  # fail fast, in the parent, on a bad folder
    os.environ[AGENTS_DIR_ENV] = str(agents_dir)
    n = workers if workers is not None else (os.cpu_count() or 1)
    quiet_pipecat_logs("DEBUG" if log_level == "debug" else "INFO")
    # Twilio sends small JSON messages 50 times a second per call: compressing them
    # (permessage-deflate, on by default) costs more CPU than it saves bandwidth.
    uvicorn.run("voxline.server:app_from_env", factory=True, host=host, port=port, workers=n,
                ws="websockets", ws_per_message_deflate=False, log_level=log_level,
                proxy_headers=True)


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

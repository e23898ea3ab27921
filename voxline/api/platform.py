"""The platform around the call host, mounted on the voxline app.

    app = create_app(agents_dir, ...)
    mount_platform(app, app.state.host)

adds, on the same app and worker:

- ``/api/v1/...``: the admin API (:mod:`voxline.api.routes`), OpenAPI at ``/api/v1/openapi.json``;
- ``/dashboard``: the tenant's dashboard (:mod:`voxline.dashboard`);
- ``GET /metrics``: Prometheus (:mod:`voxline.observability.metrics`);
- ``GET /readyz``: 200 while the worker takes calls, 503 while it drains;
- OTel traces when ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set, JSON logs with
  ``VOXLINE_LOG_FORMAT=json``;
- outgoing webhooks, signed and retried (:mod:`voxline.api.webhooks`);
- graceful drain on SIGTERM (:mod:`voxline.api.drain`);
- agents stored in the database, served next to the folder's agents and reloaded when
  they change (here at once, on other workers within ``refresh_secs``), and the agent
  version each call ran;
- a sweep that closes calls whose worker died (ended abnormally: ``abandoned``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse, Response

from voxline.api.agents import load_stored_agents, spec_digest
from voxline.api.auth import admin_key_from_env
from voxline.api.drain import Drainer
from voxline.api.secrets import Envelopes
from voxline.api.store import PlatformStore
from voxline.api.webhooks import WebhookDispatcher, WebhookOptions
from voxline.integrations.tools.settings import ToolConfig
from voxline.observability.host_events import BaseListener, CallInfo, HostEvents
from voxline.routing import normalize_number

log = logging.getLogger("voxline.platform")


class _Versions(BaseListener):
    """Records which agent version each call ran, after the call (off its path)."""

    def __init__(self, platform: Platform) -> None:
        self.platform = platform

    def call_ended(self, call: CallInfo, reason: str, result: Any) -> None:
        if call.spec.memory.enabled:
            self.platform.spawn(self.platform.record_version(call))


class Platform:
    def __init__(self, app: FastAPI, host: Any, *, admin_key: str | None, envelopes: Envelopes | None,
                 metrics: bool, tracing_exporter: Any, webhooks: bool, webhook_options: WebhookOptions | None,
                 drain: bool, drain_secs: float | None, sweep_every_secs: float, refresh_secs: float,
                 recording_dir: Path | None) -> None:
        self.app, self.host = app, host
        self.admin_key = admin_key
        self.envelopes = envelopes
        self.store: PlatformStore | None = None
        self.events = HostEvents()
        self.folder_agents = dict(host.agents)
        self.versions: dict[str, tuple[int | None, str]] = {
            name: (None, spec_digest(spec)) for name, spec in self.folder_agents.items()}
        self._recording_dir = recording_dir
        self._tasks: set[asyncio.Task[Any]] = set()
        self.webhooks: WebhookDispatcher | None = None
        self._webhooks_on, self._webhook_options = webhooks, webhook_options
        self.tracing: Any = None
        self._tracing_exporter = tracing_exporter
        self._metrics_on = metrics
        self.drainer: Drainer | None = (Drainer(host, deadline_secs=drain_secs, before_exit=self._flush)
                                        if drain else None)
        self.sweep_every_secs, self.refresh_secs = sweep_every_secs, refresh_secs
        self._agents_stamp: Any = None
        self._housekeeper: asyncio.Task[Any] | None = None
        self.started = False

    @property
    def recording_dir(self) -> Path:
        return Path(self._recording_dir or self.host.recording_dir)

    def require_store(self) -> PlatformStore:
        if self.store is None:
            from fastapi import HTTPException

            raise HTTPException(503, "the platform is starting")
        return self.store

    def serves(self, tenant: str, agent: str) -> bool:
        spec = self.host.agents.get(agent)
        return spec is not None and spec.memory.tenant == tenant

    def spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- lifecycle -------------------------------------------------------------------------
    async def start(self) -> None:
        memory = self.host.memory
        if memory is None:
            raise RuntimeError("mount_platform: the call host has no store (start it first)")
        self.store = PlatformStore(memory.store, self.envelopes or Envelopes())
        if self._metrics_on:
            from voxline.observability.metrics import MetricsListener

            self.events.add(MetricsListener())
        from voxline.observability.tracing import TracingListener, tracer_provider

        provider = tracer_provider(self._tracing_exporter)
        if provider is not None:
            self.tracing = TracingListener(provider)
            self.events.add(self.tracing)
        if self._webhooks_on:
            self.webhooks = WebhookDispatcher(self.store, self._webhook_options)
            self.webhooks.start()
            self.events.add(self.webhooks)
        self.events.add(_Versions(self))
        self.events.attach(self.host)
        self.host.route_lookup = self._route_for
        with contextlib.suppress(Exception):
            await self.reload_agents()
        if self.drainer is not None:
            self.drainer.install()
        self._housekeeper = asyncio.create_task(self._housekeeping())
        self.started = True

    async def stop(self) -> None:
        if self.drainer is not None:
            self.drainer.uninstall()
        await self._flush()
        if self._housekeeper is not None:
            self._housekeeper.cancel()
            await asyncio.gather(self._housekeeper, return_exceptions=True)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.webhooks is not None:
            await self.webhooks.close(timeout=0.1)
        if self.tracing is not None:
            self.tracing.shutdown()

    async def _flush(self) -> None:
        """What must reach its destination before the process exits."""
        with contextlib.suppress(Exception):
            await self.host.settle()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=10)
        if self.webhooks is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.webhooks._flush(), 15)

    async def _housekeeping(self) -> None:
        loop = asyncio.get_running_loop()
        next_sweep = loop.time() + self.sweep_every_secs
        while True:
            await asyncio.sleep(min(self.refresh_secs, self.sweep_every_secs))
            with contextlib.suppress(Exception):
                stamp = await self.require_store().agents_changed_at()
                if stamp != self._agents_stamp:
                    await self.reload_agents()
            if loop.time() >= next_sweep and self.host.memory is not None:
                next_sweep = loop.time() + self.sweep_every_secs
                try:
                    await self.host.memory.store.sweep_abandoned(is_alive=self.host._is_alive)
                except Exception as e:
                    log.warning("- sweep of abandoned calls failed: %s", type(e).__name__)

    # -- agents in the database -----------------------------------------------------------------
    async def reload_agents(self) -> None:
        store = self.require_store()
        self._agents_stamp = await store.agents_changed_at()
        stored = await load_stored_agents(store)
        agents = dict(self.folder_agents)
        versions = {name: v for name, v in self.versions.items() if name in self.folder_agents}
        for name, (spec, tenant, version) in stored.items():
            if name in self.folder_agents and self.folder_agents[name].memory.tenant != tenant:
                log.warning("- stored agent %s of tenant %s: a folder agent has that name", name, tenant)
                continue
            agents[name] = spec
            versions[name] = (version, spec_digest(spec))
        self.host.agents = await self._with_tool_settings(agents)
        self.versions = versions

    async def agents_changed(self) -> None:
        await self.reload_agents()

    async def _route_for(self, dialed: str) -> str | None:
        """A number routed through the API: to an agent this server runs for that tenant."""
        found = await self.require_store().route_for(normalize_number(dialed))
        if found is None:
            return None
        tenant, agent = found
        if not self.serves(tenant, agent):
            log.warning("- a stored route of tenant %s names agent %s, which this server does not run as it",
                        tenant, agent)
            return None
        return agent

    async def _with_tool_settings(self, agents: dict[str, Any]) -> dict[str, Any]:
        """Each agent with its tenant's tool settings and opened secrets (tools/settings.py)."""
        store = self.require_store()
        out = {}
        for name, spec in agents.items():
            configs = {}
            for row in await store.tool_configs(spec.memory.tenant, name):
                secrets: dict[str, str] = {}
                if row["secrets"]:
                    try:
                        secrets = await store.tool_secrets(spec.memory.tenant, name, row["tool"])
                    except Exception as e:  # noqa: BLE001 - the tool runs without them, loudly
                        log.warning("- secrets of tool %s/%s cannot be opened here: %s", name, row["tool"],
                                    type(e).__name__)
                configs[row["tool"]] = ToolConfig(settings=row["settings"], secrets=secrets)
            out[name] = spec.with_tool_settings(configs) if configs else spec
        return out

    async def record_version(self, call: CallInfo) -> None:
        version, digest = self.versions.get(call.agent, (None, spec_digest(call.spec)))
        store = self.require_store()
        for _ in range(20):  # the call's row is written by the recorder, maybe a moment later
            with contextlib.suppress(Exception):
                if await store.store.get_call(call.tenant, call.call_id, with_turns=False) is not None:
                    await store.record_call_version(call.call_id, tenant=call.tenant, agent=call.agent,
                                                    version=version, spec_sha256=digest)
                    return
            await asyncio.sleep(0.25)


def mount_platform(
    app: FastAPI,
    host: Any,
    *,
    admin_key: str | None = None,
    envelopes: Envelopes | None = None,
    metrics: bool = True,
    dashboard: bool = True,
    webhooks: bool = True,
    webhook_options: WebhookOptions | None = None,
    tracing_exporter: Any = None,
    drain: bool = True,
    drain_secs: float | None = None,
    sweep_every_secs: float = 15.0,
    refresh_secs: float = 10.0,
    recording_dir: Path | None = None,
    api_docs: bool = True,
) -> Platform:
    """Mount the admin API, dashboard, metrics, readiness, webhooks and drain on ``app``
    (a :func:`voxline.server.create_app` app whose call host is ``host``).

    ``admin_key`` defaults to ``$VOXLINE_ADMIN_KEY`` (unset: no platform admin);
    ``envelopes`` to the master key in ``$VOXLINE_SECRETS_KEY``.
    """
    from voxline.api.routes import api_app

    platform = Platform(app, host, admin_key=admin_key if admin_key is not None else admin_key_from_env(),
                        envelopes=envelopes, metrics=metrics, tracing_exporter=tracing_exporter,
                        webhooks=webhooks, webhook_options=webhook_options, drain=drain, drain_secs=drain_secs,
                        sweep_every_secs=sweep_every_secs, refresh_secs=refresh_secs, recording_dir=recording_dir)
    app.state.platform = platform
    original = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(a: FastAPI) -> AsyncIterator[Any]:
        async with original(a) as state:
            await platform.start()
            try:
                yield state
            finally:
                await platform.stop()

    app.router.lifespan_context = lifespan

    @app.get("/readyz", include_in_schema=False)
    async def readyz() -> JSONResponse:
        if host.draining or not platform.started:
            return JSONResponse({"ready": False, "draining": host.draining}, 503)
        return JSONResponse({"ready": True, "active_calls": len(host.calls)})

    if metrics:
        from voxline.observability.metrics import metrics as process_metrics
        from voxline.observability.metrics import render

        process_metrics()  # created before the first call

        @app.get("/metrics", include_in_schema=False)
        async def prometheus() -> Response:
            body, content_type = render()
            return Response(body, media_type=content_type)

    app.mount("/api/v1", api_app(platform, docs=api_docs))
    if dashboard:
        from voxline.dashboard import dashboard_router

        app.include_router(dashboard_router(platform))
    return platform

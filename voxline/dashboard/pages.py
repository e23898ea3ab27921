"""The dashboard's pages: ``/dashboard`` (overview with charts), calls, one call (transcript,
tool calls, latencies, audio), agents and versions, live calls.

Sign-in takes an API key (any role) and keeps it in an HttpOnly, SameSite=Strict
cookie scoped to ``/dashboard``; the pages show that key's tenant only (the platform
admin picks one with ``?tenant=``). Everything is rendered on the server.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Form, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response

from voxline.api import views
from voxline.api.auth import PLATFORM, Principal, identify
from voxline.dashboard.charts import line_chart
from voxline.dashboard.templates import TEMPLATES

COOKIE = "voxline_dashboard"
DAYS = 14


def _env() -> Any:
    from jinja2 import DictLoader, Environment, select_autoescape

    return Environment(loader=DictLoader(TEMPLATES), autoescape=select_autoescape(default=True,
                                                                                  default_for_string=True))


class NotSignedIn(Exception):
    pass


def dashboard_router(platform: Any) -> APIRouter:
    router = APIRouter(prefix="/dashboard", include_in_schema=False)
    env = _env()

    def page(name: str, status: int = 200, **context: Any) -> HTMLResponse:
        return HTMLResponse(env.get_template(name).render(**context), status)

    async def who(request: Request) -> tuple[Principal, str] | None:
        store = platform.store
        if store is None:
            return None
        found = await identify(request.cookies.get(COOKIE), store, platform.admin_key)
        if found is None:
            return None
        if found.role == PLATFORM:
            tenant = request.query_params.get("tenant") or ""
            if not tenant or await store.tenant(tenant) is None:
                return found, ""
            return found, tenant
        return found, found.tenant or ""

    def nav(tenant: str, principal: Principal) -> dict[str, Any]:
        q = f"?tenant={quote(tenant)}" if principal.role == PLATFORM else ""
        links = [(f"/dashboard{q}", "Overview"), (f"/dashboard/calls{q}", "Calls"),
                 (f"/dashboard/live{q}", "Live"), (f"/dashboard/agents{q}", "Agents")]
        return {"nav": links, "tenant": tenant, "q": q}

    async def signed_in(request: Request) -> tuple[Principal, str, dict[str, Any]] | Response:
        found = await who(request)
        if found is None:
            return RedirectResponse("/dashboard/login", 303)
        principal, tenant = found
        if not tenant:  # the platform admin has not picked a tenant
            tenants = views.jsonable(await platform.store.list_tenants())
            return page("tenants", title="Tenants", tenants=tenants, nav=None)
        return principal, tenant, nav(tenant, principal)

    @router.get("/login")
    async def login_form() -> HTMLResponse:
        return page("login", title="Sign in", nav=None)

    @router.post("/login")
    async def login(request: Request, key: str = Form(""), tenant: str = Form("")) -> Response:
        store = platform.require_store()
        found = await identify(key.strip(), store, platform.admin_key)
        if found is None:
            return page("login", 401, title="Sign in", nav=None, error="That key is not valid.")
        target = "/dashboard" + (f"?tenant={quote(tenant)}" if found.role == PLATFORM and tenant else "")
        response = RedirectResponse(target, 303)
        response.set_cookie(COOKIE, key.strip(), httponly=True, samesite="strict", path="/dashboard",
                            secure=request.url.scheme == "https", max_age=12 * 3600)
        return response

    @router.post("/logout")
    async def logout() -> Response:
        response = RedirectResponse("/dashboard/login", 303)
        response.delete_cookie(COOKIE, path="/dashboard")
        return response

    @router.get("")
    async def overview(request: Request) -> Response:
        state = await signed_in(request)
        if isinstance(state, Response):
            return state
        _principal, tenant, ctx = state
        store = platform.store
        today = datetime.now(UTC).date()
        days = [(today - timedelta(days=DAYS - 1 - i)).isoformat() for i in range(DAYS)]
        since = datetime.combine(today - timedelta(days=DAYS - 1), datetime.min.time(), UTC)
        daily = await store.agent_daily(tenant, since=since)
        latency: dict[str, dict[str, float]] = {}
        cost: dict[str, dict[str, float]] = {}
        for row in daily:
            if row["v2v_p50_ms"] is not None:
                latency.setdefault(row["agent"], {})[row["day"]] = row["v2v_p50_ms"]
            if row["priced"]:
                cost.setdefault(row["agent"], {})[row["day"]] = row["cost_usd"]
        usage = await store.usage_by_day(tenant, since=since, until=since + timedelta(days=DAYS + 1))
        totals = {"calls": sum(d["calls"] for d in usage), "minutes": sum(d["minutes"] for d in usage),
                  "cost": sum(d["cost_usd"] for d in usage)}
        recent = [views.call_summary(c) for c in await store.search_calls(tenant, limit=10)]
        live = await store.open_calls(tenant)
        return page("overview", title="Overview", active="Overview", days=days, totals=totals, recent=recent,
                    live=live, latency_chart=line_chart(latency, days, unit=" ms",
                                                        title="Voice-to-voice latency p50, per agent"),
                    cost_chart=line_chart(cost, days, unit="", title="Cost per agent per day (USD)", decimals=3),
                    **ctx)

    @router.get("/calls")
    async def calls(request: Request, agent: str = "", caller: str = "") -> Response:
        state = await signed_in(request)
        if isinstance(state, Response):
            return state
        _principal, tenant, ctx = state
        store = platform.store
        rows = await store.search_calls(tenant, agent=agent or None, caller=caller or None, limit=100)
        agents = sorted({a["name"] for a in await store.list_agents(tenant)}
                        | {n for n, s in platform.host.agents.items() if s.memory.tenant == tenant})
        return page("calls", title="Calls", active="Calls", calls=[views.call_summary(c) for c in rows],
                    agents=agents, agent=agent, caller=caller, **ctx)

    @router.get("/live")
    async def live(request: Request) -> Response:
        state = await signed_in(request)
        if isinstance(state, Response):
            return state
        _principal, tenant, ctx = state
        rows = await platform.store.open_calls(tenant)
        return page("live", title="Live calls", active="Live", refresh=5,
                    calls=[views.call_summary(c) for c in rows], **ctx)

    @router.get("/calls/{call_id}")
    async def call(request: Request, call_id: str) -> Response:
        state = await signed_in(request)
        if isinstance(state, Response):
            return state
        _principal, tenant, ctx = state
        record = await platform.store.store.get_call(tenant, call_id)
        if record is None:
            return page("live", 404, title="Not found", active="", calls=[], **ctx)
        detail = views.call_detail(record)
        detail["agent_version"] = await platform.store.call_version(tenant, call_id)
        has_audio = views.recording_path(platform.recording_dir, call_id) is not None
        v2v = ((record.latency_stats or {}).get("voice_to_voice") or {}).get("p50")
        return page("call", title=f"Call {call_id}", active="Calls", call=detail, v2v=v2v,
                    recording=f"/dashboard/calls/{quote(call_id)}/recording{ctx['q']}" if has_audio else None,
                    **ctx)

    @router.get("/calls/{call_id}/recording")
    async def recording(request: Request, call_id: str) -> Response:
        state = await signed_in(request)
        if isinstance(state, Response):
            return state
        _principal, tenant, _ctx = state
        if await platform.store.store.get_call(tenant, call_id, with_turns=False) is None:
            return Response(status_code=404)
        path = views.recording_path(platform.recording_dir, call_id)
        return FileResponse(path, media_type="audio/wav") if path else Response(status_code=404)

    @router.get("/agents")
    async def agents(request: Request) -> Response:
        state = await signed_in(request)
        if isinstance(state, Response):
            return state
        _principal, tenant, ctx = state
        store = platform.store
        rows = []
        stored = {a["name"]: a for a in await store.list_agents(tenant)}
        for name in sorted(stored):
            versions = views.jsonable(await store.agent_versions(tenant, name) or [])
            rows.append({"name": name, "source": "database", "active_version": stored[name]["active_version"],
                         "versions": versions})
        for name, spec in sorted(platform.folder_agents.items()):
            if spec.memory.tenant == tenant and name not in stored:
                rows.append({"name": name, "source": "folder", "active_version": None, "versions": []})
        return page("agents", title="Agents", active="Agents", agents=rows, **ctx)

    return router

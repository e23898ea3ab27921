"""The admin API, ``/api/v1`` (its OpenAPI document at ``/api/v1/openapi.json``).

Every path below ``/tenants/{tenant}`` is scoped to that tenant (see
:mod:`voxline.api.auth`); the platform admin creates tenants and acts on any of them.
Changes and erasures are written to the audit log with the key that made them.
"""

# No `from __future__ import annotations`: FastAPI reads the dependencies below from live annotations.
import re
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import FileResponse, JSONResponse
from pydantic import BaseModel, Field

from voxline.api import views
from voxline.api.agents import prompt_sha256, validate
from voxline.api.auth import PLATFORM, Principal, bearer, identify, not_found, scope
from voxline.api.billing_routes import billing_router
from voxline.api.store import ROLES, Conflict
from voxline.errors import SpecError
from voxline.memory.records import CallerKey
from voxline.routing import normalize_number

if TYPE_CHECKING:
    from voxline.api.platform import Platform

TENANT_ID = r"^[A-Za-z0-9_.:-]{1,64}$"
AGENT_NAME = r"^[a-z0-9][a-z0-9_-]{0,63}$"
EVENTS = ("call.started", "call.ended", "handoff.requested")
_NUMBER = re.compile(r"^(\+[1-9][0-9]{6,14}|sip:[A-Za-z0-9._~+-]{1,64}@[A-Za-z0-9.-]{1,253}(:[0-9]{1,5})?)\Z")


class TenantIn(BaseModel):
    id: str = Field(pattern=TENANT_ID)
    name: str | None = Field(None, max_length=200)


class KeyIn(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    role: str = Field(pattern="^(admin|member|readonly)$")


class AgentIn(BaseModel):
    spec: dict[str, Any]
    note: str | None = Field(None, max_length=500)


class ActivateIn(BaseModel):
    version: int = Field(ge=1)


class RouteIn(BaseModel):
    agent: str = Field(pattern=AGENT_NAME)


class ToolConfigIn(BaseModel):
    """``secrets`` are write-only: a string sets one, null removes it; they are never shown."""

    settings: dict[str, Any] | None = None
    secrets: dict[str, str | None] | None = None
    functions: dict[str, bool] | None = None


class WebhookIn(BaseModel):
    url: str = Field(pattern=r"^https?://", max_length=2000)
    events: list[str] = Field(min_length=1)


def _day(value: str | None, default: datetime) -> datetime:
    if not value:
        return default
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise HTTPException(422, f"not an ISO date: {value[:40]!r}") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def api_app(platform: "Platform", *, docs: bool = True) -> FastAPI:
    api = FastAPI(
        title="voxline admin API", version="1",
        description="Tenants, API keys, agents and versions, routes, tool settings, calls, "
                    "memory, usage, audit log and webhooks. Authenticate with `Authorization: Bearer KEY`.",
        docs_url="/docs" if docs else None, redoc_url=None, openapi_url="/openapi.json" if docs else None,
    )

    @api.exception_handler(HTTPException)
    async def _http_error(_request: Request, exc: HTTPException) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status_code == 401 else None
        return JSONResponse({"error": exc.detail}, exc.status_code, headers=headers)

    async def principal(request: Request) -> Principal:
        store = platform.require_store()
        found = await identify(bearer(request), store, platform.admin_key)
        if found is None:
            raise HTTPException(401, "missing or invalid API key")
        return found

    Who = Annotated[Principal, Depends(principal)]

    def role(needed: str) -> Any:
        async def dep(tenant: str, who: Who) -> Principal:
            return await scope(who, tenant, platform.require_store(), needed)
        return Depends(dep)

    Reader = Annotated[Principal, role("readonly")]
    Member = Annotated[Principal, role("member")]
    Admin = Annotated[Principal, role("admin")]

    # -- tenants --------------------------------------------------------------------------
    @api.post("/tenants", status_code=201, tags=["tenants"])
    async def create_tenant(body: TenantIn, who: Who) -> dict[str, Any]:
        """Platform admin: a tenant and its first admin key (shown once)."""
        if who.role != PLATFORM:
            raise HTTPException(403, "only the platform admin creates tenants")
        store = platform.require_store()
        try:
            await store.create_tenant(body.id, body.name, actor=who.actor)
        except Conflict as e:
            raise HTTPException(409, str(e)) from None
        key, token = await store.create_key(body.id, name="first admin key", role="admin", actor=who.actor)
        return {"tenant": {"id": body.id, "name": body.name}, "key": {**views.jsonable(key), "token": token}}

    @api.get("/tenants", tags=["tenants"])
    async def list_tenants(who: Who) -> dict[str, Any]:
        """Platform admin: every tenant; a tenant key: its own."""
        store = platform.require_store()
        if who.role == PLATFORM:
            return {"tenants": views.jsonable(await store.list_tenants())}
        own = await store.tenant(who.tenant or "")
        return {"tenants": views.jsonable([own] if own else [])}

    @api.get("/tenants/{tenant}", tags=["tenants"])
    async def get_tenant(tenant: str, _who: Reader) -> dict[str, Any]:
        found = await platform.require_store().tenant(tenant)
        if found is None:
            raise not_found()
        return views.jsonable(found)

    # -- keys ---------------------------------------------------------------------------------
    @api.post("/tenants/{tenant}/keys", status_code=201, tags=["keys"])
    async def create_key(tenant: str, body: KeyIn, who: Admin) -> dict[str, Any]:
        """A new key; its token is in this answer only."""
        key, token = await platform.require_store().create_key(tenant, name=body.name, role=body.role,
                                                                actor=who.actor)
        return {**views.jsonable(key), "token": token}

    @api.get("/tenants/{tenant}/keys", tags=["keys"])
    async def list_keys(tenant: str, _who: Admin) -> dict[str, Any]:
        return {"keys": views.jsonable(await platform.require_store().list_keys(tenant)), "roles": list(ROLES)}

    @api.delete("/tenants/{tenant}/keys/{key_id}", status_code=204, tags=["keys"])
    async def revoke_key(tenant: str, key_id: str, who: Admin) -> None:
        if not await platform.require_store().revoke_key(tenant, key_id, actor=who.actor):
            raise not_found()

    # -- agents ---------------------------------------------------------------------------------
    @api.get("/tenants/{tenant}/agents", tags=["agents"])
    async def list_agents(tenant: str, _who: Reader) -> dict[str, Any]:
        return {"agents": views.jsonable(await platform.require_store().list_agents(tenant))}

    @api.post("/tenants/{tenant}/agents", status_code=201, tags=["agents"])
    async def push_agent(tenant: str, body: AgentIn, who: Member) -> dict[str, Any]:
        """Store a spec as the agent's new active version (unchanged spec: no new version)."""
        try:
            data, spec = validate(body.spec, tenant=tenant)
        except SpecError as e:
            return JSONResponse({"error": "invalid agent spec",  # type: ignore[return-value]
                                 "problems": [{"field": w, "problem": p} for w, p in e.problems]}, 422)
        result = await platform.require_store().push_agent(tenant, data, prompt_sha256=prompt_sha256(spec),
                                                           actor=who.actor, note=body.note)
        await platform.agents_changed()
        return result

    @api.get("/tenants/{tenant}/agents/{name}", tags=["agents"])
    async def get_agent(tenant: str, name: str, _who: Reader) -> dict[str, Any]:
        found = await platform.require_store().agent_version(tenant, name)
        if found is None:
            raise not_found()
        return views.jsonable(found)

    @api.delete("/tenants/{tenant}/agents/{name}", status_code=204, tags=["agents"])
    async def delete_agent(tenant: str, name: str, who: Admin) -> None:
        if not await platform.require_store().delete_agent(tenant, name, actor=who.actor):
            raise not_found()
        await platform.agents_changed()

    @api.get("/tenants/{tenant}/agents/{name}/versions", tags=["agents"])
    async def agent_versions(tenant: str, name: str, _who: Reader) -> dict[str, Any]:
        found = await platform.require_store().agent_versions(tenant, name)
        if found is None:
            raise not_found()
        return {"name": name, "versions": views.jsonable(found)}

    @api.get("/tenants/{tenant}/agents/{name}/versions/{version}", tags=["agents"])
    async def agent_version(tenant: str, name: str, version: int, _who: Reader) -> dict[str, Any]:
        found = await platform.require_store().agent_version(tenant, name, version)
        if found is None:
            raise not_found()
        return views.jsonable(found)

    @api.post("/tenants/{tenant}/agents/{name}/activate", tags=["agents"])
    async def activate(tenant: str, name: str, body: ActivateIn, who: Member) -> dict[str, Any]:
        """Make a version the active one (a rollback, or forward again)."""
        if not await platform.require_store().activate(tenant, name, body.version, actor=who.actor):
            raise not_found()
        await platform.agents_changed()
        return {"name": name, "active_version": body.version}

    # -- tool settings ------------------------------------------------------------------------------
    @api.get("/tenants/{tenant}/agents/{name}/tools", tags=["tools"])
    async def list_tools(tenant: str, name: str, _who: Reader) -> dict[str, Any]:
        store = platform.require_store()
        if await store.agent_version(tenant, name) is None and not platform.serves(tenant, name):
            raise not_found()
        return {"tools": views.jsonable(await store.tool_configs(tenant, name))}

    @api.get("/tenants/{tenant}/agents/{name}/tools/{tool}", tags=["tools"])
    async def get_tool(tenant: str, name: str, tool: str, _who: Reader) -> dict[str, Any]:
        found = await platform.require_store().tool_config(tenant, name, tool)
        if found is None:
            raise not_found()
        return views.jsonable(found)

    @api.put("/tenants/{tenant}/agents/{name}/tools/{tool}", tags=["tools"])
    async def put_tool(tenant: str, name: str, tool: str, body: ToolConfigIn, who: Member) -> dict[str, Any]:
        """Settings and per-function switches (member); secrets need the admin role."""
        store = platform.require_store()
        if await store.agent_version(tenant, name) is None and not platform.serves(tenant, name):
            raise not_found()
        if body.secrets and not who.can("admin"):
            raise HTTPException(403, "setting secrets needs the admin role")
        if body.secrets and not store.envelopes.enabled:
            raise HTTPException(503, "secrets cannot be stored: VOXLINE_SECRETS_KEY is not set on the server")
        result = await store.put_tool_config(tenant, name, tool, settings=body.settings, secrets=body.secrets,
                                             functions=body.functions, actor=who.actor)
        await platform.agents_changed()  # the agent runs with its new settings from the next call
        return views.jsonable(result)

    # -- routes ---------------------------------------------------------------------------------------
    @api.get("/tenants/{tenant}/routes", tags=["routes"])
    async def list_routes(tenant: str, _who: Reader) -> dict[str, Any]:
        return {"routes": views.jsonable(await platform.require_store().list_routes(tenant))}

    @api.put("/tenants/{tenant}/routes/{number}", tags=["routes"])
    async def set_route(tenant: str, number: str, body: RouteIn, who: Member) -> dict[str, Any]:
        """Route a dialed number (E.164, or a sip: address) to one of the tenant's agents."""
        number = normalize_number(number)
        if not _NUMBER.match(number):
            raise HTTPException(422, "number must be E.164 (+15550001111) or a sip: address")
        store = platform.require_store()
        if await store.agent_version(tenant, body.agent) is None and not platform.serves(tenant, body.agent):
            raise HTTPException(422, "unknown agent")
        try:
            await store.set_route(tenant, number, body.agent, actor=who.actor)
        except Conflict as e:
            raise HTTPException(409, str(e)) from None
        return {"number": number, "agent": body.agent}

    @api.delete("/tenants/{tenant}/routes/{number}", status_code=204, tags=["routes"])
    async def delete_route(tenant: str, number: str, who: Member) -> None:
        if not await platform.require_store().delete_route(tenant, normalize_number(number), actor=who.actor):
            raise not_found()

    # -- calls -------------------------------------------------------------------------------------------
    @api.get("/tenants/{tenant}/calls", tags=["calls"])
    async def list_calls(
        tenant: str, who: Reader, agent: str | None = None,
        caller: Annotated[str | None, Query(max_length=255)] = None,
        since: str | None = None, until: str | None = None,
        outcome: Annotated[str | None, Query(max_length=64, description="end reason")] = None,
        status: Annotated[str | None, Query(max_length=24)] = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 50, before: str | None = None,
    ) -> dict[str, Any]:
        """Search: by agent, caller (number or caller key), date range, outcome, status."""
        never = datetime.min.replace(tzinfo=UTC)
        rows = await platform.require_store().search_calls(
            tenant, agent=agent, caller=caller, since=_day(since, never) if since else None,
            until=_day(until, never) if until else None, outcome=outcome, status=status, limit=limit,
            before=_day(before, never) if before else None)
        return {"calls": [views.call_summary(c) for c in rows]}

    @api.get("/tenants/{tenant}/calls/{call_id}", tags=["calls"])
    async def get_call(tenant: str, call_id: str, _who: Reader) -> dict[str, Any]:
        store = platform.require_store()
        record = await store.store.get_call(tenant, call_id)
        if record is None:
            raise not_found()
        detail = views.call_detail(record)
        detail["agent_version"] = await store.call_version(tenant, call_id)
        has_recording = views.recording_path(platform.recording_dir, call_id) is not None
        detail["recording_url"] = f"/api/v1/tenants/{tenant}/calls/{call_id}/recording" if has_recording else None
        return detail

    @api.get("/tenants/{tenant}/calls/{call_id}/recording", tags=["calls"])
    async def get_recording(tenant: str, call_id: str, _who: Reader) -> FileResponse:
        """The call's two-channel WAV (caller left, agent right)."""
        if await platform.require_store().store.get_call(tenant, call_id, with_turns=False) is None:
            raise not_found()
        path = views.recording_path(platform.recording_dir, call_id)
        if path is None:
            raise not_found()
        return FileResponse(path, media_type="audio/wav")

    @api.get("/tenants/{tenant}/live", tags=["calls"])
    async def live_calls(tenant: str, _who: Reader) -> dict[str, Any]:
        """Calls not ended yet, on every worker (from the store)."""
        rows = await platform.require_store().open_calls(tenant)
        return {"calls": [views.call_summary(c) | {"owner_here": c.id in platform.host.calls} for c in rows]}

    # -- memory ---------------------------------------------------------------------------------------------
    @api.get("/tenants/{tenant}/callers/{caller}/memories", tags=["memory"])
    async def list_memories(tenant: str, caller: str, who: Member) -> dict[str, Any]:
        """What is remembered about a caller (the read is audited)."""
        rows = await platform.require_store().store.list_memories(tenant, CallerKey.parse(caller), actor=who.actor)
        return {"caller": CallerKey.parse(caller).fingerprint(), "memories": [views.memory_view(m) for m in rows]}

    @api.delete("/tenants/{tenant}/callers/{caller}", tags=["memory"])
    async def forget(tenant: str, caller: str, who: Admin) -> dict[str, Any]:
        """Erase a caller: memories, summaries, transcripts, tool calls (audited)."""
        key = CallerKey.parse(caller)
        counts = await platform.require_store().store.forget(tenant, key, actor=who.actor)
        return {"caller": key.fingerprint(), "erased": counts}

    # -- usage and audit ------------------------------------------------------------------------------------------
    @api.get("/tenants/{tenant}/usage", tags=["usage"])
    async def usage(tenant: str, _who: Reader, since: str | None = None, until: str | None = None) -> dict[str, Any]:
        """Per UTC day: calls, minutes, tokens, characters, audio seconds, cost (at most 92 days)."""
        now = datetime.now(UTC)
        end = _day(until, now + timedelta(days=1))
        start = _day(since, end - timedelta(days=31))
        if end - start > timedelta(days=92):
            raise HTTPException(422, "at most 92 days at once")
        return {"days": await platform.require_store().usage_by_day(tenant, since=start, until=end)}

    @api.get("/tenants/{tenant}/audit", tags=["audit"])
    async def audit(tenant: str, _who: Admin, limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> dict[str, Any]:
        """Every change and erasure: who, what, when (targets are ids, never caller content)."""
        rows = await platform.require_store().store.audit_log(tenant, limit=limit)
        return {"entries": views.jsonable(rows)}

    # -- webhooks -----------------------------------------------------------------------------------------------------
    @api.post("/tenants/{tenant}/webhooks", status_code=201, tags=["webhooks"])
    async def create_webhook(tenant: str, body: WebhookIn, who: Admin) -> dict[str, Any]:
        """A webhook and its signing secret (shown once). Events: call.started, call.ended, handoff.requested."""
        unknown = sorted(set(body.events) - set(EVENTS))
        if unknown:
            raise HTTPException(422, f"unknown events: {', '.join(unknown)}")
        store = platform.require_store()
        if not store.envelopes.enabled:
            raise HTTPException(503, "webhooks need VOXLINE_SECRETS_KEY set on the server")
        hook, secret = await store.create_webhook(tenant, url=body.url, events=body.events, actor=who.actor)
        return {**views.jsonable(hook), "secret": secret}

    @api.get("/tenants/{tenant}/webhooks", tags=["webhooks"])
    async def list_webhooks(tenant: str, _who: Admin) -> dict[str, Any]:
        return {"webhooks": views.jsonable(await platform.require_store().list_webhooks(tenant))}

    @api.delete("/tenants/{tenant}/webhooks/{hook_id}", status_code=204, tags=["webhooks"])
    async def delete_webhook(tenant: str, hook_id: str, who: Admin) -> None:
        if not await platform.require_store().delete_webhook(tenant, hook_id, actor=who.actor):
            raise not_found()

    @api.get("/tenants/{tenant}/webhook-deliveries", tags=["webhooks"])
    async def deliveries(tenant: str, _who: Admin) -> dict[str, Any]:
        return {"deliveries": views.jsonable(await platform.require_store().deliveries(tenant))}

    api.include_router(billing_router(platform, principal))

    return api

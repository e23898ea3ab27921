"""The platform's rows on the call store: tenants, API keys, agents and versions, routes,
tool settings, webhooks, usage. Every method takes the tenant and filters on it.

``PlatformStore(store)`` shares the call store's engine and transactions; every change
writes an audit row (who, what, when) in the same transaction. Secrets go in sealed
(:mod:`voxline.api.secrets`) and come out only through :meth:`tool_secrets`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets as pysecrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from voxline.api.secrets import Envelopes
from voxline.memory.models import (
    AgentVersion,
    ApiKey,
    Call,
    CallAgentVersion,
    Caller,
    CallSummary,
    Route,
    StoredAgent,
    Tenant,
    ToolConfig,
    Webhook,
    WebhookDelivery,
)
from voxline.memory.records import CallerKey, CallRecord
from voxline.memory.store import Store, _call_record
from voxline.memory.types import utcnow

ROLES = ("admin", "member", "readonly")
KEY_PREFIX = "vxk"
_TOUCH_EVERY = timedelta(seconds=60)  # last_used_at is refreshed at most this often


class Conflict(Exception):
    """The change clashes with what exists (a tenant id taken, a number routed elsewhere)."""


@dataclass(frozen=True)
class KeyInfo:
    id: str
    tenant: str
    role: str


def spec_sha256(spec: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(spec, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _secret_hash(secret: str) -> str:
    # Keys are 256 random bits: a plain SHA-256 is enough (no dictionary to guess from).
    return hashlib.sha256(secret.encode()).hexdigest()


def parse_token(token: str) -> tuple[str, str] | None:
    """``vxk_<id>_<secret>`` -> (id, secret)."""
    parts = token.strip().split("_")
    if len(parts) != 3 or parts[0] != KEY_PREFIX or not parts[1] or not parts[2]:
        return None
    return parts[1], parts[2]


class PlatformStore:
    def __init__(self, store: Store, envelopes: Envelopes | None = None) -> None:
        self.store = store
        self.envelopes = envelopes or Envelopes()
        self._touched: dict[str, datetime] = {}

    def _tx(self) -> Any:
        return self.store._tx()

    async def _audit(self, conn: Any, tenant: str, actor: str, action: str, target_type: str,
                     target_id: str | None, **detail: Any) -> None:
        await self.store._audit(conn, tenant, actor, action, target_type, target_id, **detail)

    # -- tenants -----------------------------------------------------------------------
    async def create_tenant(self, tenant: str, name: str | None, *, actor: str) -> None:
        async with self._tx() as conn:
            if (await conn.execute(sa.select(Tenant.id).where(Tenant.id == tenant))).first():
                raise Conflict(f"tenant {tenant!r} exists")
            await conn.execute(sa.insert(Tenant).values(id=tenant, name=name, created_at=utcnow()))
            await self._audit(conn, tenant, actor, "tenant.create", "tenant", tenant, name=name)

    async def tenant(self, tenant: str) -> dict[str, Any] | None:
        async with self._tx() as conn:
            row = (await conn.execute(sa.select(Tenant).where(Tenant.id == tenant))).first()
        return None if row is None else {"id": row.id, "name": row.name, "created_at": row.created_at}

    async def list_tenants(self) -> list[dict[str, Any]]:
        async with self._tx() as conn:
            rows = await conn.execute(sa.select(Tenant).order_by(Tenant.id))
            return [{"id": r.id, "name": r.name, "created_at": r.created_at} for r in rows]

    # -- API keys ------------------------------------------------------------------------
    async def create_key(self, tenant: str, *, name: str, role: str, actor: str) -> tuple[dict[str, Any], str]:
        """A new key; returns its row and the token (shown once, never stored)."""
        if role not in ROLES:
            raise ValueError(f"role must be one of {', '.join(ROLES)}")
        key_id, secret = pysecrets.token_hex(8), pysecrets.token_urlsafe(32).replace("_", "-")
        now = utcnow()
        async with self._tx() as conn:
            await conn.execute(sa.insert(ApiKey).values(
                id=key_id, tenant_id=tenant, name=name, role=role, secret_sha256=_secret_hash(secret),
                created_at=now, created_by=actor))
            await self._audit(conn, tenant, actor, "key.create", "api_key", key_id, role=role, name=name)
        row = {"id": key_id, "name": name, "role": role, "created_at": now, "created_by": actor,
               "last_used_at": None, "revoked_at": None}
        return row, f"{KEY_PREFIX}_{key_id}_{secret}"

    async def list_keys(self, tenant: str) -> list[dict[str, Any]]:
        cols = [ApiKey.id, ApiKey.name, ApiKey.role, ApiKey.created_at, ApiKey.created_by,
                ApiKey.last_used_at, ApiKey.revoked_at]
        async with self._tx() as conn:
            rows = await conn.execute(sa.select(*cols).where(ApiKey.tenant_id == tenant).order_by(ApiKey.created_at))
            return [dict(r._mapping) for r in rows]

    async def revoke_key(self, tenant: str, key_id: str, *, actor: str) -> bool:
        async with self._tx() as conn:
            res = await conn.execute(sa.update(ApiKey).where(
                ApiKey.tenant_id == tenant, ApiKey.id == key_id, ApiKey.revoked_at.is_(None),
            ).values(revoked_at=utcnow()))
            if res.rowcount:
                await self._audit(conn, tenant, actor, "key.revoke", "api_key", key_id)
            return bool(res.rowcount)

    async def authenticate(self, token: str) -> KeyInfo | None:
        parsed = parse_token(token)
        if parsed is None:
            return None
        key_id, secret = parsed
        async with self._tx() as conn:
            row = (await conn.execute(sa.select(ApiKey.tenant_id, ApiKey.role, ApiKey.secret_sha256,
                                                ApiKey.revoked_at).where(ApiKey.id == key_id))).first()
            if row is None or row.revoked_at is not None:
                return None
            if not hmac.compare_digest(row.secret_sha256, _secret_hash(secret)):
                return None
            now = utcnow()
            if now - self._touched.get(key_id, datetime.min.replace(tzinfo=UTC)) > _TOUCH_EVERY:
                self._touched[key_id] = now
                await conn.execute(sa.update(ApiKey).where(ApiKey.id == key_id).values(last_used_at=now))
        return KeyInfo(key_id, row.tenant_id, row.role)

    # -- agents and versions ---------------------------------------------------------------
    async def push_agent(self, tenant: str, spec: dict[str, Any], *, prompt_sha256: str, actor: str,
                         note: str | None = None) -> dict[str, Any]:
        """Store ``spec`` (validated by the caller) as the agent's new active version;
        the same spec as the active one changes nothing."""
        name, digest, now = str(spec["name"]), spec_sha256(spec), utcnow()
        async with self._tx() as conn:
            agent = (await conn.execute(sa.select(StoredAgent).where(
                StoredAgent.tenant_id == tenant, StoredAgent.name == name).with_for_update())).first()
            if agent is not None:
                active = (await conn.execute(sa.select(AgentVersion.spec_sha256).where(
                    AgentVersion.tenant_id == tenant, AgentVersion.name == name,
                    AgentVersion.version == agent.active_version))).scalar()
                if active == digest:
                    return {"name": name, "version": agent.active_version, "changed": False}
                latest = (await conn.execute(sa.select(sa.func.max(AgentVersion.version)).where(
                    AgentVersion.tenant_id == tenant, AgentVersion.name == name))).scalar() or 0
                version = latest + 1
            else:
                version = 1
                await conn.execute(sa.insert(StoredAgent).values(
                    tenant_id=tenant, name=name, active_version=0, created_at=now, updated_at=now))
            await conn.execute(sa.insert(AgentVersion).values(
                tenant_id=tenant, name=name, version=version, spec=spec, spec_sha256=digest,
                prompt_sha256=prompt_sha256, note=note, created_at=now, created_by=actor))
            await conn.execute(sa.update(StoredAgent).where(StoredAgent.tenant_id == tenant, StoredAgent.name == name)
                               .values(active_version=version, updated_at=now))
            await self._audit(conn, tenant, actor, "agent.push", "agent", name, version=version,
                              spec_sha256=digest[:16])
        return {"name": name, "version": version, "changed": True}

    async def list_agents(self, tenant: str) -> list[dict[str, Any]]:
        async with self._tx() as conn:
            counts = (sa.select(AgentVersion.name, sa.func.count().label("n"))
                      .where(AgentVersion.tenant_id == tenant).group_by(AgentVersion.name).subquery())
            rows = await conn.execute(
                sa.select(StoredAgent.name, StoredAgent.active_version, StoredAgent.updated_at, counts.c.n)
                .join(counts, counts.c.name == StoredAgent.name)
                .where(StoredAgent.tenant_id == tenant).order_by(StoredAgent.name))
            return [{"name": r.name, "active_version": r.active_version, "versions": r.n,
                     "updated_at": r.updated_at} for r in rows]

    async def agent_versions(self, tenant: str, name: str) -> list[dict[str, Any]] | None:
        async with self._tx() as conn:
            active = (await conn.execute(sa.select(StoredAgent.active_version).where(
                StoredAgent.tenant_id == tenant, StoredAgent.name == name))).scalar()
            if active is None:
                return None
            rows = await conn.execute(
                sa.select(AgentVersion.version, AgentVersion.spec_sha256, AgentVersion.prompt_sha256,
                          AgentVersion.note, AgentVersion.created_at, AgentVersion.created_by)
                .where(AgentVersion.tenant_id == tenant, AgentVersion.name == name)
                .order_by(AgentVersion.version.desc()))
            return [{**dict(r._mapping), "active": r.version == active} for r in rows]

    async def agent_version(self, tenant: str, name: str, version: int | None = None) -> dict[str, Any] | None:
        """One version (default: the active one) with its spec."""
        async with self._tx() as conn:
            active = (await conn.execute(sa.select(StoredAgent.active_version).where(
                StoredAgent.tenant_id == tenant, StoredAgent.name == name))).scalar()
            if active is None:
                return None
            row = (await conn.execute(sa.select(AgentVersion).where(
                AgentVersion.tenant_id == tenant, AgentVersion.name == name,
                AgentVersion.version == (version or active)))).first()
        if row is None:
            return None
        return {"name": name, "version": row.version, "active": row.version == active, "spec": row.spec,
                "spec_sha256": row.spec_sha256, "prompt_sha256": row.prompt_sha256, "note": row.note,
                "created_at": row.created_at, "created_by": row.created_by}

    async def activate(self, tenant: str, name: str, version: int, *, actor: str) -> bool:
        """Make an earlier (or later) version the active one: rollback."""
        async with self._tx() as conn:
            exists = (await conn.execute(sa.select(AgentVersion.version).where(
                AgentVersion.tenant_id == tenant, AgentVersion.name == name,
                AgentVersion.version == version))).first()
            if exists is None:
                return False
            previous = (await conn.execute(sa.select(StoredAgent.active_version).where(
                StoredAgent.tenant_id == tenant, StoredAgent.name == name))).scalar()
            await conn.execute(sa.update(StoredAgent).where(StoredAgent.tenant_id == tenant, StoredAgent.name == name)
                               .values(active_version=version, updated_at=utcnow()))
            await self._audit(conn, tenant, actor, "agent.activate", "agent", name, version=version,
                              previous=previous)
        return True

    async def delete_agent(self, tenant: str, name: str, *, actor: str) -> bool:
        async with self._tx() as conn:
            await conn.execute(sa.delete(AgentVersion).where(AgentVersion.tenant_id == tenant,
                                                             AgentVersion.name == name))
            res = await conn.execute(sa.delete(StoredAgent).where(StoredAgent.tenant_id == tenant,
                                                                  StoredAgent.name == name))
            if res.rowcount:
                await self._audit(conn, tenant, actor, "agent.delete", "agent", name)
            return bool(res.rowcount)

    async def active_agents(self) -> list[dict[str, Any]]:
        """Every tenant's active agent versions (for the servers that run them)."""
        async with self._tx() as conn:
            rows = await conn.execute(
                sa.select(AgentVersion.tenant_id, AgentVersion.name, AgentVersion.version, AgentVersion.spec,
                          AgentVersion.spec_sha256)
                .join(StoredAgent, sa.and_(StoredAgent.tenant_id == AgentVersion.tenant_id,
                                           StoredAgent.name == AgentVersion.name,
                                           StoredAgent.active_version == AgentVersion.version)))
            return [dict(r._mapping) for r in rows]

    async def agents_changed_at(self) -> tuple[datetime | None, datetime | None]:
        """When any tenant's agents or tool settings last changed (servers reload on a change)."""
        async with self._tx() as conn:
            agents = (await conn.execute(sa.select(sa.func.max(StoredAgent.updated_at)))).scalar()
            tools = (await conn.execute(sa.select(sa.func.max(ToolConfig.updated_at)))).scalar()
        return agents, tools

    # -- routes ----------------------------------------------------------------------------
    async def set_route(self, tenant: str, number: str, agent: str, *, actor: str) -> None:
        async with self._tx() as conn:
            owner = (await conn.execute(sa.select(Route.tenant_id).where(Route.number == number))).scalar()
            if owner is not None and owner != tenant:
                raise Conflict("this number is not available")
            if owner is None:
                await conn.execute(sa.insert(Route).values(number=number, tenant_id=tenant, agent=agent,
                                                           created_at=utcnow()))
            else:
                await conn.execute(sa.update(Route).where(Route.number == number).values(agent=agent))
            await self._audit(conn, tenant, actor, "route.set", "route", number, agent=agent)

    async def list_routes(self, tenant: str) -> list[dict[str, Any]]:
        async with self._tx() as conn:
            rows = await conn.execute(sa.select(Route.number, Route.agent, Route.created_at)
                                      .where(Route.tenant_id == tenant).order_by(Route.number))
            return [dict(r._mapping) for r in rows]

    async def delete_route(self, tenant: str, number: str, *, actor: str) -> bool:
        async with self._tx() as conn:
            res = await conn.execute(sa.delete(Route).where(Route.tenant_id == tenant, Route.number == number))
            if res.rowcount:
                await self._audit(conn, tenant, actor, "route.delete", "route", number)
            return bool(res.rowcount)

    async def route_for(self, number: str) -> tuple[str, str] | None:
        async with self._tx() as conn:
            row = (await conn.execute(sa.select(Route.tenant_id, Route.agent).where(Route.number == number))).first()
        return None if row is None else (row.tenant_id, row.agent)

    # -- tool settings -----------------------------------------------------------------------
    async def put_tool_config(self, tenant: str, agent: str, tool: str, *, settings: dict[str, Any] | None,
                              secrets: dict[str, str | None] | None, functions: dict[str, bool] | None,
                              actor: str) -> dict[str, Any]:
        """Merge a change: ``settings`` replaces the plain settings when given; ``secrets``
        sets (a string) or removes (None) named secrets; ``functions`` enables/disables."""
        async with self._tx() as conn:
            row = (await conn.execute(sa.select(ToolConfig).where(
                ToolConfig.tenant_id == tenant, ToolConfig.agent == agent, ToolConfig.tool == tool))).first()
            current_settings = dict(row.settings or {}) if row else {}
            sealed = row.secrets if row else None
            disabled = set(row.disabled_functions or []) if row else set()
            if settings is not None:
                current_settings = settings
            changed_secrets: list[str] = []
            if secrets:
                plain = self.envelopes.open(sealed) if sealed else {}
                for key, value in secrets.items():
                    changed_secrets.append(key)
                    if value is None:
                        plain.pop(key, None)
                    else:
                        plain[key] = value
                # The names are not secret: kept beside the envelope so views never decrypt.
                sealed = {**self.envelopes.seal(plain), "names": sorted(plain)} if plain else None
            for fn, enabled in (functions or {}).items():
                (disabled.discard if enabled else disabled.add)(fn)
            values = dict(settings=current_settings, secrets=sealed, disabled_functions=sorted(disabled),
                          updated_at=utcnow())
            if row is None:
                await conn.execute(sa.insert(ToolConfig).values(tenant_id=tenant, agent=agent, tool=tool, **values))
            else:
                await conn.execute(sa.update(ToolConfig).where(
                    ToolConfig.tenant_id == tenant, ToolConfig.agent == agent, ToolConfig.tool == tool,
                ).values(**values))
            # The audit row names the secrets that changed, never their values.
            await self._audit(conn, tenant, actor, "tool.configure", "tool", f"{agent}/{tool}",
                              settings=settings is not None, secrets=sorted(changed_secrets),
                              functions=dict(functions or {}))
        return await self.tool_config(tenant, agent, tool) or {}

    def _tool_view(self, row: Any) -> dict[str, Any]:
        names = list((row.secrets or {}).get("names") or [])
        return {"agent": row.agent, "tool": row.tool, "settings": row.settings or {},
                "secrets": {name: "set" for name in names},
                "disabled_functions": list(row.disabled_functions or []), "updated_at": row.updated_at}

    async def tool_config(self, tenant: str, agent: str, tool: str) -> dict[str, Any] | None:
        async with self._tx() as conn:
            row = (await conn.execute(sa.select(ToolConfig).where(
                ToolConfig.tenant_id == tenant, ToolConfig.agent == agent, ToolConfig.tool == tool))).first()
        return None if row is None else self._tool_view(row)

    async def tool_configs(self, tenant: str, agent: str | None = None) -> list[dict[str, Any]]:
        async with self._tx() as conn:
            q = sa.select(ToolConfig).where(ToolConfig.tenant_id == tenant)
            if agent is not None:
                q = q.where(ToolConfig.agent == agent)
            rows = (await conn.execute(q.order_by(ToolConfig.agent, ToolConfig.tool))).all()
        return [self._tool_view(r) for r in rows]

    async def tool_secrets(self, tenant: str, agent: str, tool: str) -> dict[str, str]:
        """The decrypted secrets of one tool, for the code that calls it. Never log them."""
        async with self._tx() as conn:
            sealed = (await conn.execute(sa.select(ToolConfig.secrets).where(
                ToolConfig.tenant_id == tenant, ToolConfig.agent == agent, ToolConfig.tool == tool))).scalar()
        return dict(self.envelopes.open(sealed)) if sealed else {}

    async def disabled_functions(self, tenant: str) -> dict[str, set[str]]:
        """agent -> function names switched off, for one tenant."""
        out: dict[str, set[str]] = {}
        for config in await self.tool_configs(tenant):
            out.setdefault(config["agent"], set()).update(config["disabled_functions"])
        return out

    # -- calls -----------------------------------------------------------------------------
    async def search_calls(self, tenant: str, *, agent: str | None = None, caller: str | None = None,
                           since: datetime | None = None, until: datetime | None = None,
                           outcome: str | None = None, status: str | None = None, limit: int = 50,
                           before: datetime | None = None) -> list[CallRecord]:
        async with self._tx() as conn:
            q = sa.select(Call).where(Call.tenant_id == tenant)
            if caller is not None:
                ck = CallerKey.parse(caller)
                cid = (await conn.execute(sa.select(Caller.id).where(
                    Caller.tenant_id == tenant, Caller.kind == ck.kind, Caller.value == ck.value))).scalar()
                if cid is None:
                    return []
                q = q.where(Call.caller_id == cid)
            if agent:
                q = q.where(Call.agent == agent)
            if since:
                q = q.where(Call.started_at >= since)
            if until:
                q = q.where(Call.started_at < until)
            if before:
                q = q.where(Call.started_at < before)
            if outcome:
                q = q.where(Call.end_reason == outcome)
            if status:
                q = q.where(Call.status == status)
            rows = await conn.execute(q.order_by(Call.started_at.desc()).limit(limit))
            return [_call_record(r) for r in rows]

    async def open_calls(self, tenant: str) -> list[CallRecord]:
        """Calls not ended yet (ringing, queued, in progress), on any worker."""
        async with self._tx() as conn:
            rows = await conn.execute(sa.select(Call).where(Call.tenant_id == tenant, Call.ended_at.is_(None))
                                      .order_by(Call.started_at.desc()).limit(500))
            return [_call_record(r) for r in rows]

    async def record_call_version(self, call_id: str, *, tenant: str, agent: str, version: int | None,
                                  spec_sha256: str) -> None:
        async with self._tx() as conn:
            exists = (await conn.execute(sa.select(Call.id).where(Call.id == call_id,
                                                                  Call.tenant_id == tenant))).first()
            if exists is None:
                return
            await conn.execute(self.store._insert(CallAgentVersion).values(
                call_id=call_id, tenant_id=tenant, agent=agent, version=version, spec_sha256=spec_sha256,
            ).on_conflict_do_nothing())

    async def call_version(self, tenant: str, call_id: str) -> dict[str, Any] | None:
        async with self._tx() as conn:
            row = (await conn.execute(sa.select(CallAgentVersion.version, CallAgentVersion.spec_sha256).where(
                CallAgentVersion.call_id == call_id, CallAgentVersion.tenant_id == tenant))).first()
        return None if row is None else {"version": row.version, "spec_sha256": row.spec_sha256}

    async def call_summary(self, tenant: str, call_id: str) -> str | None:
        async with self._tx() as conn:
            return (await conn.execute(sa.select(CallSummary.text).where(
                CallSummary.tenant_id == tenant, CallSummary.call_id == call_id))).scalar()

    async def usage_by_day(self, tenant: str, *, since: datetime, until: datetime) -> list[dict[str, Any]]:
        """Per UTC day: calls, minutes, usage (tokens, characters, audio seconds) and cost."""
        async with self._tx() as conn:
            rows = (await conn.execute(
                sa.select(Call.started_at, Call.ended_at, Call.usage, Call.cost_usd, Call.agent)
                .where(Call.tenant_id == tenant, Call.started_at >= since, Call.started_at < until))).all()
        days: dict[str, dict[str, Any]] = {}
        for r in rows:
            day = r.started_at.astimezone(UTC).date().isoformat()
            d = days.setdefault(day, {"day": day, "calls": 0, "minutes": 0.0, "cost_usd": 0.0, "usage": {}})
            d["calls"] += 1
            if r.ended_at is not None:
                d["minutes"] = round(d["minutes"] + (r.ended_at - r.started_at).total_seconds() / 60, 3)
            d["cost_usd"] = round(d["cost_usd"] + (r.cost_usd or 0.0), 6)
            for key, amount in (r.usage or {}).items():
                d["usage"][key] = round(d["usage"].get(key, 0.0) + float(amount), 3)
        return [days[k] for k in sorted(days)]

    async def agent_daily(self, tenant: str, *, since: datetime) -> list[dict[str, Any]]:
        """Per agent per day: calls, cost and voice-to-voice p50 (for the dashboard charts)."""
        async with self._tx() as conn:
            rows = (await conn.execute(sa.select(Call.agent, Call.started_at, Call.cost_usd, Call.latency_stats)
                                       .where(Call.tenant_id == tenant, Call.started_at >= since))).all()
        out: dict[tuple[str, str], dict[str, Any]] = {}
        for r in rows:
            day = r.started_at.astimezone(UTC).date().isoformat()
            d = out.setdefault((r.agent, day), {"agent": r.agent, "day": day, "calls": 0, "cost_usd": 0.0,
                                                "priced": 0, "v2v": []})
            d["calls"] += 1
            d["priced"] += r.cost_usd is not None
            d["cost_usd"] = round(d["cost_usd"] + (r.cost_usd or 0.0), 6)
            v2v = ((r.latency_stats or {}).get("voice_to_voice") or {}).get("p50")
            if v2v is not None:
                d["v2v"].append(float(v2v))
        result = []
        for (_agent, _day), d in sorted(out.items()):
            samples = sorted(d.pop("v2v"))
            d["v2v_p50_ms"] = samples[len(samples) // 2] if samples else None
            result.append(d)
        return result

    # -- webhooks --------------------------------------------------------------------------------
    async def create_webhook(self, tenant: str, *, url: str, events: list[str], actor: str
                             ) -> tuple[dict[str, Any], str]:
        hook_id, secret = str(uuid.uuid4()), "whsec_" + pysecrets.token_urlsafe(32)
        now = utcnow()
        async with self._tx() as conn:
            await conn.execute(sa.insert(Webhook).values(id=hook_id, tenant_id=tenant, url=url, events=events,
                                                         secret=self.envelopes.seal(secret), enabled=True,
                                                         created_at=now))
            await self._audit(conn, tenant, actor, "webhook.create", "webhook", hook_id, events=events)
        return {"id": hook_id, "url": url, "events": events, "enabled": True, "created_at": now}, secret

    async def list_webhooks(self, tenant: str) -> list[dict[str, Any]]:
        async with self._tx() as conn:
            rows = await conn.execute(sa.select(Webhook.id, Webhook.url, Webhook.events, Webhook.enabled,
                                                Webhook.created_at).where(Webhook.tenant_id == tenant)
                                      .order_by(Webhook.created_at))
            return [dict(r._mapping) for r in rows]

    async def delete_webhook(self, tenant: str, hook_id: str, *, actor: str) -> bool:
        async with self._tx() as conn:
            res = await conn.execute(sa.delete(Webhook).where(Webhook.tenant_id == tenant, Webhook.id == hook_id))
            if res.rowcount:
                await self._audit(conn, tenant, actor, "webhook.delete", "webhook", hook_id)
            return bool(res.rowcount)

    async def webhooks_for(self, tenant: str, event: str) -> list[tuple[str, str, str]]:
        """(id, url, signing secret) of the tenant's enabled webhooks that want ``event``."""
        async with self._tx() as conn:
            rows = (await conn.execute(sa.select(Webhook).where(Webhook.tenant_id == tenant,
                                                                Webhook.enabled.is_(True)))).all()
        return [(r.id, r.url, str(self.envelopes.open(r.secret))) for r in rows if event in (r.events or [])]

    async def record_delivery(self, delivery_id: str, *, tenant: str, webhook_id: str, event: str, status: str,
                              attempts: int, error: str | None) -> None:
        now = utcnow()
        values = dict(status=status, attempts=attempts, last_error=(error or None) and error[:500],
                      delivered_at=now if status == "delivered" else None)
        async with self._tx() as conn:
            await conn.execute(self.store._insert(WebhookDelivery).values(
                id=delivery_id, tenant_id=tenant, webhook_id=webhook_id, event=event, created_at=now, **values,
            ).on_conflict_do_update(index_elements=["id"], set_=values))

    async def deliveries(self, tenant: str, *, limit: int = 100) -> list[dict[str, Any]]:
        async with self._tx() as conn:
            rows = await conn.execute(sa.select(WebhookDelivery.id, WebhookDelivery.webhook_id, WebhookDelivery.event,
                                                WebhookDelivery.status, WebhookDelivery.attempts,
                                                WebhookDelivery.last_error, WebhookDelivery.created_at,
                                                WebhookDelivery.delivered_at)
                                      .where(WebhookDelivery.tenant_id == tenant)
                                      .order_by(WebhookDelivery.created_at.desc()).limit(limit))
            return [dict(r._mapping) for r in rows]

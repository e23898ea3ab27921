"""The Store: call records, transcripts and tool calls, tenant-scoped, on either backend.

Writes are idempotent (turns keyed by (call, index), tool calls by id, calls by id) so
the CallRecorder can retry a write whose acknowledgement was lost without duplicating.
Memory rows (facts, summaries, erasure) live in `MemoryRowsMixin`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from typing import Any

import numpy as np
import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from voxline.memory.db import backend_of, create_engine, resolve_url
from voxline.memory.memory_rows import MemoryRowsMixin
from voxline.memory.migrate import check_engine, upgrade_engine
from voxline.memory.models import AuditLog, Call, Caller, Tenant, ToolCall, Turn
from voxline.memory.records import (
    CallerKey,
    CallRecord,
    StoreError,
    TenantMismatch,
    ToolCallRecord,
    TurnRecord,
)
from voxline.memory.types import utcnow

log = logging.getLogger("voxline.memory")

IN_PROGRESS = "in-progress"
ABANDONED = "abandoned"
# States a phone call is in before its media starts (Twilio's names).
PRE_ANSWER = frozenset({"queued", "initiated", "ringing"})
OPEN_STATES = PRE_ANSWER | {IN_PROGRESS}
_PERMANENT = (sa_exc.IntegrityError, sa_exc.DataError, sa_exc.ProgrammingError)


def process_owner_id() -> str:
    """host:pid:nonce — identifies this server process as the holder of its calls."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _local_pid_alive(owner: str) -> bool | None:
    """True/False when the owner ran on this host, None when we cannot tell."""
    host, _, rest = owner.partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname() or not pid.isdigit():
        return None
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Store(MemoryRowsMixin):
    def __init__(self, engine: AsyncEngine, *, owner: str | None = None) -> None:
        self.engine = engine
        self.backend = backend_of(str(engine.url))
        self.owner = owner or process_owner_id()
        # SQLite has one writer; its busy handler retries waiting writers on a timer, not
        # in turn, so under many calls' writes some waited past busy_timeout and failed
        # ("database is locked": webhooks answered 500). One transaction at a time, queued.
        self._sqlite_turn = asyncio.Lock() if self.backend == "sqlite" else None
        self._side_engines: dict[str, AsyncEngine] = {}

    def side_engine(self, name: str, **kw: Any) -> AsyncEngine:
        """A second pool on the same database for one kind of work (``kw``: its engine
        options), made on first use and disposed with the store."""
        if name not in self._side_engines:
            self._side_engines[name] = create_engine(self.engine.url.render_as_string(hide_password=False), **kw)
        return self._side_engines[name]

    async def close(self) -> None:
        for engine in self._side_engines.values():
            await engine.dispose()
        await self.engine.dispose()

    # -- plumbing ---------------------------------------------------------------
    @contextlib.asynccontextmanager
    async def _tx(self) -> AsyncIterator[AsyncConnection]:
        """One transaction; SQLAlchemy errors become StoreError with `retryable` set."""
        try:
            async with self._sqlite_turn or contextlib.nullcontext(), self.engine.begin() as conn:
                yield conn
        except StoreError:
            raise
        except _PERMANENT as e:
            raise StoreError(f"{type(e).__name__}: {e.orig}", retryable=False) from e
        except (sa_exc.SQLAlchemyError, OSError, TimeoutError, ConnectionError) as e:
            raise StoreError(f"database unavailable: {type(e).__name__}", retryable=True) from e

    def _insert(self, table: Any) -> Any:
        return (pg_insert if self.backend == "postgresql" else sqlite_insert)(table)

    async def _ensure_tenant(self, conn: AsyncConnection, tenant: str) -> None:
        await conn.execute(
            self._insert(Tenant).values(id=tenant, created_at=utcnow()).on_conflict_do_nothing()
        )

    async def _caller_id(
        self, conn: AsyncConnection, tenant: str, key: str | CallerKey, *, create: bool
    ) -> str | None:
        ck = CallerKey.parse(key)
        q = sa.select(Caller.id).where(
            Caller.tenant_id == tenant, Caller.kind == ck.kind, Caller.value == ck.value
        )
        found = (await conn.execute(q)).scalar()
        if found or not create:
            return found
        await conn.execute(
            self._insert(Caller)
            .values(
                id=str(uuid.uuid4()),
                tenant_id=tenant,
                kind=ck.kind,
                value=ck.value,
                created_at=utcnow(),
            )
            .on_conflict_do_nothing()
        )
        return (await conn.execute(q)).scalar()

    async def caller_id(self, tenant: str, caller_key: str | CallerKey) -> str | None:
        async with self._tx() as conn:
            return await self._caller_id(conn, tenant, caller_key, create=False)

    async def _audit(
        self,
        conn: AsyncConnection,
        tenant: str,
        actor: str,
        action: str,
        target_type: str,
        target_id: str | None,
        **detail: Any,
    ) -> None:
        await conn.execute(
            sa.insert(AuditLog).values(
                tenant_id=tenant,
                actor=actor,
                action=action,
                target_type=target_type,
                target_id=target_id,
                detail=detail,
                at=utcnow(),
            )
        )

    async def audit_log(self, tenant: str, *, limit: int = 100) -> list[dict[str, Any]]:
        async with self._tx() as conn:
            rows = await conn.execute(
                sa.select(AuditLog)
                .where(AuditLog.tenant_id == tenant)
                .order_by(AuditLog.id.desc())
                .limit(limit)
            )
            return [dict(r._mapping) for r in rows]

    # -- writing a call -----------------------------------------------------------
    async def start_call(
        self,
        tenant: str,
        *,
        call_id: str,
        channel: str,
        direction: str,
        from_: str | None,
        to: str | None,
        agent: str,
        caller_key: str | None,
        model_versions: dict[str, Any],
        started_at: datetime | None = None,
        status: str = IN_PROGRESS,
    ) -> None:
        """Open a call row, or take over one a webhook opened (ringing, queued) when its
        media arrives: this process becomes its owner and the caller is attached."""
        async with self._tx() as conn:
            await self._ensure_tenant(conn, tenant)
            existing = (
                await conn.execute(
                    sa.select(Call.tenant_id, Call.status, Call.caller_id).where(Call.id == call_id)
                )
            ).first()
            caller_id = None
            if caller_key:
                caller_id = await self._caller_id(conn, tenant, caller_key, create=True)
                await conn.execute(
                    sa.update(Caller).where(Caller.id == caller_id).values(last_seen_at=utcnow())
                )
            if existing is not None:
                if existing.tenant_id != tenant:
                    raise TenantMismatch(f"call {call_id} belongs to another tenant")
                if existing.status in PRE_ANSWER and status not in PRE_ANSWER:
                    values: dict[str, Any] = dict(status=status, owner=self.owner)
                    if model_versions:
                        values["model_versions"] = model_versions
                    if existing.caller_id is None and caller_id is not None:
                        values["caller_id"] = caller_id
                    await conn.execute(sa.update(Call).where(Call.id == call_id).values(**values))
                return  # otherwise: a retried start whose first attempt did commit
            await conn.execute(
                sa.insert(Call).values(
                    id=call_id,
                    tenant_id=tenant,
                    caller_id=caller_id,
                    channel=channel,
                    direction=direction,
                    from_addr=from_,
                    to_addr=to,
                    agent=agent,
                    status=status,
                    owner=self.owner,
                    started_at=started_at or utcnow(),
                    model_versions=model_versions or {},
                    erased=False,
                )
            )

    async def add_turn(
        self,
        call_id: str,
        *,
        index: int,
        role: str,
        text: str,
        heard: str | None,
        started_at: datetime | None,
        ended_at: datetime | None,
        interrupted: bool,
        latency_ms: dict[str, float] | None,
        usage: dict[str, float] | None = None,
        providers: dict[str, Any] | None = None,
        cost_usd: float | None = None,
        agent: str | None = None,
        language: str | None = None,
    ) -> None:
        values = dict(
            agent=agent,
            language=language,
            role=role,
            text=text,
            heard=heard,
            started_at=started_at,
            ended_at=ended_at,
            interrupted=interrupted,
            latency_ms=latency_ms or {},
            usage=usage or None,
            providers=providers or None,
            cost_usd=cost_usd,
        )
        async with self._tx() as conn:
            await conn.execute(
                self._insert(Turn)
                .values(call_id=call_id, index=index, **values)
                .on_conflict_do_update(index_elements=["call_id", "index"], set_=values)
            )

    async def add_tool_call(
        self,
        call_id: str,
        *,
        turn_index: int,
        name: str,
        arguments: Any,
        result: Any,
        duration_ms: float | None,
        error: str | None,
        tool_call_id: str | None = None,
    ) -> None:
        async with self._tx() as conn:
            await conn.execute(
                self._insert(ToolCall)
                .values(
                    id=tool_call_id or str(uuid.uuid4()),
                    call_id=call_id,
                    turn_index=turn_index,
                    name=name,
                    arguments=arguments,
                    result=result,
                    duration_ms=duration_ms,
                    error=error,
                    created_at=utcnow(),
                )
                .on_conflict_do_nothing()
            )

    async def end_call(
        self,
        call_id: str,
        *,
        status: str,
        end_reason: str | None,
        ended_at: datetime | None,
        cost_usd: float | None = None,
        transport_stats: dict[str, Any] | None = None,
    ) -> None:
        """Close a call. The first close wins ("transferred" beats a later "dropped");
        later ones still add latency figures, cost and transport counters."""
        async with self._tx() as conn:
            rows = (await conn.execute(
                sa.select(Turn.latency_ms, Turn.usage, Turn.cost_usd).where(Turn.call_id == call_id)
            )).all()
            values: dict[str, Any] = dict(latency_stats=latency_stats([r[0] or {} for r in rows]))
            usage: dict[str, float] = {}
            for row in rows:
                for key, amount in (row[1] or {}).items():
                    usage[key] = round(usage.get(key, 0.0) + float(amount), 3)
            if usage:
                values["usage"] = usage
            turn_costs = [r[2] for r in rows if r[2] is not None]
            if cost_usd is not None or turn_costs:
                values["cost_usd"] = round((cost_usd or 0.0) + sum(turn_costs), 6)
            if transport_stats:
                values["transport_stats"] = transport_stats
            await conn.execute(sa.update(Call).where(Call.id == call_id).values(**values))
            await conn.execute(
                sa.update(Call)
                .where(Call.id == call_id, Call.ended_at.is_(None))
                .values(status=status, end_reason=end_reason, ended_at=ended_at or utcnow())
            )

    async def set_call_state(
        self, call_id: str, *, status: str | None = None, answered_by: str | None = None,
        transfer_to: str | None = None,
    ) -> bool:
        """Move an open call's state (webhooks, status callbacks); False if unknown."""
        async with self._tx() as conn:
            values: dict[str, Any] = {}
            if answered_by:
                values["answered_by"] = answered_by
            if transfer_to:
                values["transfer_to"] = transfer_to
            if values:
                await conn.execute(sa.update(Call).where(Call.id == call_id).values(**values))
            q = sa.update(Call).where(Call.id == call_id, Call.ended_at.is_(None))
            if status:
                res = await conn.execute(q.values(status=status))
            else:
                res = await conn.execute(sa.select(Call.id).where(Call.id == call_id))
                return res.first() is not None
            return bool(res.rowcount) or (
                await conn.execute(sa.select(Call.id).where(Call.id == call_id))
            ).first() is not None

    async def find_call(self, call_id: str) -> CallRecord | None:
        """A call by id across tenants: for transports, whose ids come from the carrier."""
        async with self._tx() as conn:
            tenant = (await conn.execute(sa.select(Call.tenant_id).where(Call.id == call_id))).scalar()
        return None if tenant is None else await self.get_call(tenant, call_id)

    # -- reading ---------------------------------------------------------------------
    async def get_call(
        self, tenant: str, call_id: str, *, with_turns: bool = True
    ) -> CallRecord | None:
        async with self._tx() as conn:
            row = (
                await conn.execute(
                    sa.select(Call).where(Call.id == call_id, Call.tenant_id == tenant)
                )
            ).first()
            if row is None:
                return None
            rec = _call_record(row)
            if with_turns:
                turns = await conn.execute(
                    sa.select(Turn).where(Turn.call_id == call_id).order_by(Turn.index)
                )
                rec.turns = [_turn_record(t) for t in turns]
                tools = await conn.execute(
                    sa.select(ToolCall)
                    .where(ToolCall.call_id == call_id)
                    .order_by(ToolCall.turn_index, ToolCall.created_at)
                )
                rec.tool_calls = [
                    ToolCallRecord(
                        t.id, t.turn_index, t.name, t.arguments, t.result, t.duration_ms, t.error
                    )
                    for t in tools
                ]
            return rec

    async def list_calls(
        self,
        tenant: str,
        *,
        caller_key: str | None = None,
        status: str | None = None,
        agent: str | None = None,
        limit: int = 50,
        before: datetime | None = None,
    ) -> list[CallRecord]:
        async with self._tx() as conn:
            q = sa.select(Call).where(Call.tenant_id == tenant)
            if caller_key is not None:
                cid = await self._caller_id(conn, tenant, caller_key, create=False)
                if cid is None:
                    return []
                q = q.where(Call.caller_id == cid)
            if status:
                q = q.where(Call.status == status)
            if agent:
                q = q.where(Call.agent == agent)
            if before:
                q = q.where(Call.started_at < before)
            rows = await conn.execute(q.order_by(Call.started_at.desc()).limit(limit))
            return [_call_record(r) for r in rows]

    async def sweep_abandoned(
        self, *, is_alive: Callable[[str], Awaitable[bool]] | None = None
    ) -> list[str]:
        """Mark in-progress calls whose owning process is gone as ended abnormally.

        `is_alive(owner)` decides (LiveState.process_alive with Redis); by default an
        owner is alive if it is us, or a pid on this host that still exists.
        """
        async with self._tx() as conn:
            rows = (
                await conn.execute(sa.select(Call.id, Call.owner).where(Call.status.in_(OPEN_STATES)))
            ).all()
        swept: list[str] = []
        for call_id, owner in rows:
            if owner == self.owner:
                continue
            if is_alive is not None:
                alive = await is_alive(owner or "")
            else:
                alive = bool(owner) and _local_pid_alive(owner) is not False
            if alive:
                continue
            async with self._tx() as conn:
                last = (
                    await conn.execute(
                        sa.select(sa.func.max(Turn.ended_at)).where(Turn.call_id == call_id)
                    )
                ).scalar()
                res = await conn.execute(
                    sa.update(Call)
                    .where(Call.id == call_id, Call.status.in_(OPEN_STATES))
                    .values(status=ABANDONED, end_reason="process-gone", ended_at=last or utcnow())
                )
                if res.rowcount:
                    swept.append(call_id)
                    log.warning("%s marked abandoned: owner %s is gone", call_id, owner)
        return swept


def latency_stats(samples: list[dict[str, float]]) -> dict[str, dict[str, float]]:
    """Per metric (e.g. ttfb, stt, llm, tts): count, p50, p95, max over the call's turns."""
    keys = {k for s in samples for k in s}
    out: dict[str, dict[str, float]] = {}
    for k in sorted(keys):
        xs = np.array([float(s[k]) for s in samples if s.get(k) is not None])
        if xs.size:
            out[k] = {
                "n": int(xs.size),
                "p50": round(float(np.percentile(xs, 50)), 1),
                "p95": round(float(np.percentile(xs, 95)), 1),
                "max": round(float(xs.max()), 1),
            }
    return out


def _call_record(r: Any) -> CallRecord:
    c = r[0] if isinstance(r[0], Call) else r
    return CallRecord(
        id=c.id,
        tenant=c.tenant_id,
        caller_id=c.caller_id,
        channel=c.channel,
        direction=c.direction,
        from_=c.from_addr,
        to=c.to_addr,
        agent=c.agent,
        status=c.status,
        started_at=c.started_at,
        ended_at=c.ended_at,
        end_reason=c.end_reason,
        model_versions=c.model_versions or {},
        cost_usd=c.cost_usd,
        latency_stats=c.latency_stats,
        owner=c.owner,
        answered_by=c.answered_by,
        transfer_to=c.transfer_to,
        transport_stats=c.transport_stats,
        usage=c.usage,
    )


def _turn_record(t: Any) -> TurnRecord:
    return TurnRecord(
        t._mapping["index"],
        t.role,
        t.text,
        t.heard,
        t.started_at,
        t.ended_at,
        bool(t.interrupted),
        t.latency_ms or {},
        t.usage or {},
        t.providers or {},
        t.cost_usd,
        getattr(t, "agent", None),
        getattr(t, "language", None),
    )


async def open_store(
    database_url: str | None = None, *, migrate: bool = True, owner: str | None = None
) -> Store:
    """Open the store at `database_url` / DATABASE_URL / ./var/voxline.db.

    With migrate=True the schema is brought to head (safe to race: Postgres upgrades
    take an advisory lock); with False it is only checked and SchemaError says what to run.
    """
    engine = create_engine(resolve_url(database_url))
    try:
        if migrate:
            await upgrade_engine(engine)
        else:
            await check_engine(engine)
    except Exception as e:
        await engine.dispose()
        if isinstance(e, StoreError | sa_exc.SQLAlchemyError | OSError):
            raise StoreError(
                f"cannot open store: {type(e).__name__}: {e}",
                retryable=not isinstance(e, _PERMANENT),
            ) from e
        raise
    return Store(engine, owner=owner)

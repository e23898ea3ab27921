"""SQLAlchemy models: the one schema both backends share.

Every row that belongs to a tenant carries `tenant_id`, so each query can be scoped
with a plain equality (and an index) instead of joins.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import numpy as np
import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from voxline.memory.types import EMBED_DIM, BigIntPK, JSONType, UTCDateTime, Vector, utcnow


class Base(DeclarativeBase):
    pass


def _tenant_fk() -> Mapped[str]:
    return mapped_column(sa.String(64), sa.ForeignKey("tenants.id"), index=True)


class Tenant(Base):
    __tablename__ = "tenants"
    id: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    name: Mapped[str | None] = mapped_column(sa.String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Caller(Base):
    """Someone who calls: a phone number, a widget user id or an external id, per tenant."""

    __tablename__ = "callers"
    __table_args__ = (sa.UniqueConstraint("tenant_id", "kind", "value"),)
    id: Mapped[str] = mapped_column(sa.String(36), primary_key=True)
    tenant_id: Mapped[str] = _tenant_fk()
    kind: Mapped[str] = mapped_column(sa.String(16))  # phone | web | external
    value: Mapped[str] = mapped_column(sa.String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_seen_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class Call(Base):
    __tablename__ = "calls"
    __table_args__ = (
        sa.Index("ix_calls_tenant_started", "tenant_id", "started_at"),
        sa.Index("ix_calls_status_owner", "status", "owner"),
    )
    id: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    tenant_id: Mapped[str] = _tenant_fk()
    caller_id: Mapped[str | None] = mapped_column(
        sa.String(36), sa.ForeignKey("callers.id", ondelete="SET NULL"), index=True
    )
    channel: Mapped[str] = mapped_column(sa.String(32))  # twilio | webrtc | websocket | sim
    direction: Mapped[str] = mapped_column(sa.String(16))  # inbound | outbound
    from_addr: Mapped[str | None] = mapped_column(sa.String(255))
    to_addr: Mapped[str | None] = mapped_column(sa.String(255))
    agent: Mapped[str] = mapped_column(sa.String(128))
    status: Mapped[str] = mapped_column(
        sa.String(24)
    )  # in-progress | completed | failed | abandoned
    owner: Mapped[str | None] = mapped_column(sa.String(200))  # process that holds the call
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    end_reason: Mapped[str | None] = mapped_column(sa.String(64))
    model_versions: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    cost_usd: Mapped[float | None] = mapped_column(sa.Float())
    latency_stats: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    erased: Mapped[bool] = mapped_column(sa.Boolean(), default=False)
    answered_by: Mapped[str | None] = mapped_column(sa.String(32))  # Twilio AMD verdict
    transfer_to: Mapped[str | None] = mapped_column(sa.String(255))
    transport_stats: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    usage: Mapped[dict[str, Any] | None] = mapped_column(JSONType)  # the turns' usage, summed


class Turn(Base):
    __tablename__ = "turns"
    call_id: Mapped[str] = mapped_column(
        sa.String(64), sa.ForeignKey("calls.id", ondelete="CASCADE"), primary_key=True
    )
    index: Mapped[int] = mapped_column(sa.Integer(), primary_key=True)
    role: Mapped[str] = mapped_column(sa.String(16))  # user | assistant | system
    text: Mapped[str] = mapped_column(sa.Text())
    heard: Mapped[str | None] = mapped_column(sa.Text())  # what the caller actually heard
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    interrupted: Mapped[bool] = mapped_column(sa.Boolean(), default=False)
    latency_ms: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    usage: Mapped[dict[str, Any] | None] = mapped_column(JSONType)  # see voxline.pricing
    providers: Mapped[dict[str, Any] | None] = mapped_column(JSONType)  # stage -> provider, model
    cost_usd: Mapped[float | None] = mapped_column(sa.Float())
    agent: Mapped[str | None] = mapped_column(sa.String(128))  # who answered (handoffs change it)
    language: Mapped[str | None] = mapped_column(sa.String(16))  # spoken in (a `languages:` persona's)


class ToolCall(Base):
    __tablename__ = "tool_calls"
    id: Mapped[str] = mapped_column(sa.String(36), primary_key=True)
    call_id: Mapped[str] = mapped_column(
        sa.String(64), sa.ForeignKey("calls.id", ondelete="CASCADE"), index=True
    )
    turn_index: Mapped[int] = mapped_column(sa.Integer())
    name: Mapped[str] = mapped_column(sa.String(128))
    arguments: Mapped[Any] = mapped_column(JSONType)
    result: Mapped[Any] = mapped_column(JSONType)
    duration_ms: Mapped[float | None] = mapped_column(sa.Float())
    error: Mapped[str | None] = mapped_column(sa.Text())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class CallSummary(Base):
    __tablename__ = "call_summaries"
    __table_args__ = (sa.Index("ix_summaries_caller", "tenant_id", "caller_id", "created_at"),)
    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(sa.String(64), sa.ForeignKey("tenants.id"))
    caller_id: Mapped[str | None] = mapped_column(
        sa.String(36), sa.ForeignKey("callers.id", ondelete="CASCADE")
    )
    call_id: Mapped[str] = mapped_column(
        sa.String(64), sa.ForeignKey("calls.id", ondelete="CASCADE"), unique=True
    )
    text: Mapped[str] = mapped_column(sa.Text())
    embedding: Mapped[np.ndarray | None] = mapped_column(Vector(EMBED_DIM))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Memory(Base):
    """A durable fact about a caller."""

    __tablename__ = "memories"
    __table_args__ = (sa.Index("ix_memories_caller", "tenant_id", "caller_id"),)
    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(sa.String(64), sa.ForeignKey("tenants.id"))
    caller_id: Mapped[str] = mapped_column(
        sa.String(36), sa.ForeignKey("callers.id", ondelete="CASCADE")
    )
    kind: Mapped[str] = mapped_column(sa.String(32))  # name | preference | problem | commitment...
    text: Mapped[str] = mapped_column(sa.Text())
    embedding: Mapped[np.ndarray] = mapped_column(Vector(EMBED_DIM))
    importance: Mapped[float] = mapped_column(sa.Float(), default=0.5)
    source_call_id: Mapped[str | None] = mapped_column(
        sa.String(64), sa.ForeignKey("calls.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class AuditLog(Base):
    """Who read or deleted what. Targets are ids, never caller content."""

    __tablename__ = "audit_log"
    __table_args__ = (sa.Index("ix_audit_tenant_at", "tenant_id", "at"),)
    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(sa.String(64))
    actor: Mapped[str] = mapped_column(sa.String(128))
    action: Mapped[str] = mapped_column(sa.String(64))
    target_type: Mapped[str] = mapped_column(sa.String(32))
    target_id: Mapped[str | None] = mapped_column(sa.String(128))
    detail: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


# -- the platform: API keys, agents in the database, routes, tool settings, webhooks ----------


class ApiKey(Base):
    """An API key of a tenant. Only a hash of its secret is kept; the key is shown once."""

    __tablename__ = "api_keys"
    id: Mapped[str] = mapped_column(sa.String(24), primary_key=True)  # the key's public part
    tenant_id: Mapped[str] = _tenant_fk()
    name: Mapped[str] = mapped_column(sa.String(200))
    role: Mapped[str] = mapped_column(sa.String(16))  # admin | member | readonly
    secret_sha256: Mapped[str] = mapped_column(sa.String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    created_by: Mapped[str] = mapped_column(sa.String(128))
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class StoredAgent(Base):
    """An agent kept in the database; its specs are the versions, one of them active."""

    __tablename__ = "agents"
    tenant_id: Mapped[str] = mapped_column(sa.String(64), sa.ForeignKey("tenants.id"), primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    active_version: Mapped[int] = mapped_column(sa.Integer())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class AgentVersion(Base):
    __tablename__ = "agent_versions"
    __table_args__ = (
        sa.ForeignKeyConstraint(["tenant_id", "name"], ["agents.tenant_id", "agents.name"], ondelete="CASCADE"),
    )
    tenant_id: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    version: Mapped[int] = mapped_column(sa.Integer(), primary_key=True)
    spec: Mapped[dict[str, Any]] = mapped_column(JSONType)
    spec_sha256: Mapped[str] = mapped_column(sa.String(64))
    prompt_sha256: Mapped[str] = mapped_column(sa.String(16))
    note: Mapped[str | None] = mapped_column(sa.String(500))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    created_by: Mapped[str] = mapped_column(sa.String(128))


class Route(Base):
    """A dialed number (or sip: address) and the agent that answers it; one tenant per number."""

    __tablename__ = "routes"
    number: Mapped[str] = mapped_column(sa.String(255), primary_key=True)
    tenant_id: Mapped[str] = _tenant_fk()
    agent: Mapped[str] = mapped_column(sa.String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class ToolConfig(Base):
    """Settings of one tool of one agent: plain settings, encrypted secrets, disabled functions."""

    __tablename__ = "tool_configs"
    tenant_id: Mapped[str] = mapped_column(sa.String(64), sa.ForeignKey("tenants.id"), primary_key=True)
    agent: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    tool: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    settings: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    secrets: Mapped[dict[str, Any] | None] = mapped_column(JSONType)  # an envelope, never plaintext
    disabled_functions: Mapped[list[str]] = mapped_column(JSONType, default=list)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class CallAgentVersion(Base):
    """Which stored agent version (and spec hash) a call ran."""

    __tablename__ = "call_agent_versions"
    call_id: Mapped[str] = mapped_column(sa.String(64), sa.ForeignKey("calls.id", ondelete="CASCADE"),
                                         primary_key=True)
    tenant_id: Mapped[str] = mapped_column(sa.String(64), index=True)
    agent: Mapped[str] = mapped_column(sa.String(64))
    version: Mapped[int | None] = mapped_column(sa.Integer())
    spec_sha256: Mapped[str] = mapped_column(sa.String(64))


class Webhook(Base):
    """Where a tenant's call events are posted, signed with its own secret (encrypted at rest)."""

    __tablename__ = "webhooks"
    id: Mapped[str] = mapped_column(sa.String(36), primary_key=True)
    tenant_id: Mapped[str] = _tenant_fk()
    url: Mapped[str] = mapped_column(sa.String(2000))
    events: Mapped[list[str]] = mapped_column(JSONType, default=list)
    secret: Mapped[dict[str, Any]] = mapped_column(JSONType)  # an envelope
    enabled: Mapped[bool] = mapped_column(sa.Boolean(), default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class WebhookDelivery(Base):
    __tablename__ = "webhook_deliveries"
    __table_args__ = (sa.Index("ix_deliveries_tenant_at", "tenant_id", "created_at"),)
    id: Mapped[str] = mapped_column(sa.String(36), primary_key=True)  # the event id
    tenant_id: Mapped[str] = mapped_column(sa.String(64))
    webhook_id: Mapped[str] = mapped_column(sa.String(36), sa.ForeignKey("webhooks.id", ondelete="CASCADE"))
    event: Mapped[str] = mapped_column(sa.String(64))
    status: Mapped[str] = mapped_column(sa.String(16))  # pending | delivered | failed
    attempts: Mapped[int] = mapped_column(sa.Integer(), default=0)
    last_error: Mapped[str | None] = mapped_column(sa.String(500))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class KnowledgeChunk(Base):
    """A piece of an agent's knowledge base (``voxline kb build``), embedded for search.

    Searched per tenant and collection: on Postgres through the HNSW index with pgvector
    0.8's iterative scans, so the tenant filter never leaves fewer than k rows."""

    __tablename__ = "knowledge_chunks"
    __table_args__ = (
        sa.Index("ix_knowledge_scope", "tenant_id", "collection", "source"),
        sa.UniqueConstraint("tenant_id", "collection", "source", "chunk_index"),
    )
    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(sa.String(64))
    collection: Mapped[str] = mapped_column(sa.String(128))
    source: Mapped[str] = mapped_column(sa.String(500))
    chunk_index: Mapped[int] = mapped_column(sa.Integer())
    text: Mapped[str] = mapped_column(sa.Text())
    source_sha256: Mapped[str] = mapped_column(sa.String(64))
    embedding: Mapped[np.ndarray] = mapped_column(Vector(EMBED_DIM))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

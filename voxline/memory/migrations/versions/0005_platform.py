"""The platform: API keys, agents and their versions, routes, tool settings, webhooks

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-10 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from voxline.memory.types import JSONType, UTCDateTime

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def _ts(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, UTCDateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(24), primary_key=True),
        sa.Column("tenant_id", sa.String(64), sa.ForeignKey("tenants.id"), nullable=False, index=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("secret_sha256", sa.String(64), nullable=False),
        _ts("created_at"),
        sa.Column("created_by", sa.String(128), nullable=False),
        _ts("last_used_at", True),
        _ts("revoked_at", True),
    )
    op.create_table(
        "agents",
        sa.Column("tenant_id", sa.String(64), sa.ForeignKey("tenants.id"), primary_key=True),
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("active_version", sa.Integer(), nullable=False),
        _ts("created_at"),
        _ts("updated_at"),
    )
    op.create_table(
        "agent_versions",
        sa.Column("tenant_id", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("version", sa.Integer(), primary_key=True),
        sa.Column("spec", JSONType, nullable=False),
        sa.Column("spec_sha256", sa.String(64), nullable=False),
        sa.Column("prompt_sha256", sa.String(16), nullable=False),
        sa.Column("note", sa.String(500), nullable=True),
        _ts("created_at"),
        sa.Column("created_by", sa.String(128), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id", "name"], ["agents.tenant_id", "agents.name"], ondelete="CASCADE"),
    )
    op.create_table(
        "routes",
        sa.Column("number", sa.String(255), primary_key=True),
        sa.Column("tenant_id", sa.String(64), sa.ForeignKey("tenants.id"), nullable=False, index=True),
        sa.Column("agent", sa.String(64), nullable=False),
        _ts("created_at"),
    )
    op.create_table(
        "tool_configs",
        sa.Column("tenant_id", sa.String(64), sa.ForeignKey("tenants.id"), primary_key=True),
        sa.Column("agent", sa.String(64), primary_key=True),
        sa.Column("tool", sa.String(64), primary_key=True),
        sa.Column("settings", JSONType, nullable=False),
        sa.Column("secrets", JSONType, nullable=True),
        sa.Column("disabled_functions", JSONType, nullable=False),
        _ts("updated_at"),
    )
    op.create_table(
        "call_agent_versions",
        sa.Column("call_id", sa.String(64), sa.ForeignKey("calls.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("tenant_id", sa.String(64), nullable=False, index=True),
        sa.Column("agent", sa.String(64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=True),
        sa.Column("spec_sha256", sa.String(64), nullable=False),
    )
    op.create_table(
        "webhooks",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("tenant_id", sa.String(64), sa.ForeignKey("tenants.id"), nullable=False, index=True),
        sa.Column("url", sa.String(2000), nullable=False),
        sa.Column("events", JSONType, nullable=False),
        sa.Column("secret", JSONType, nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        _ts("created_at"),
    )
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("webhook_id", sa.String(36), sa.ForeignKey("webhooks.id", ondelete="CASCADE"), nullable=False),
        sa.Column("event", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.String(500), nullable=True),
        _ts("created_at"),
        _ts("delivered_at", True),
    )
    op.create_index("ix_deliveries_tenant_at", "webhook_deliveries", ["tenant_id", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_deliveries_tenant_at", "webhook_deliveries")
    for table in ("webhook_deliveries", "webhooks", "call_agent_versions", "tool_configs", "routes",
                  "agent_versions", "agents", "api_keys"):
        op.drop_table(table)

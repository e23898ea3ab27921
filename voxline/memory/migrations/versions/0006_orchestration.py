"""Orchestration: the agent that answered each turn; knowledge base chunks

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 01:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from voxline.memory.types import UTCDateTime, Vector

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("turns") as batch:
        batch.add_column(sa.Column("agent", sa.String(128), nullable=True))
    op.create_table(
        "knowledge_chunks",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("collection", sa.String(128), nullable=False),
        sa.Column("source", sa.String(500), nullable=False),
        sa.Column("chunk_index", sa.Integer(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("source_sha256", sa.String(64), nullable=False),
        sa.Column("embedding", Vector(384), nullable=False),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("tenant_id", "collection", "source", "chunk_index"),
    )
    op.create_index("ix_knowledge_scope", "knowledge_chunks", ["tenant_id", "collection", "source"])
    if op.get_bind().dialect.name == "postgresql":
        # Searched with hnsw.iterative_scan (pgvector 0.8): the scan goes on until enough
        # rows of the tenant pass the filter, instead of filtering one ef_search batch.
        op.execute(
            "CREATE INDEX ix_knowledge_embedding_hnsw ON knowledge_chunks "
            "USING hnsw (embedding vector_cosine_ops) WITH (m = 32, ef_construction = 128)"
        )


def downgrade() -> None:
    op.drop_table("knowledge_chunks")
    with op.batch_alter_table("turns") as batch:
        batch.drop_column("agent")

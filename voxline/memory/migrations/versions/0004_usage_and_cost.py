"""Usage and cost per turn and per call, and which provider served each turn

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 23:50:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from voxline.memory.types import JSONType

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("turns", schema=None) as batch_op:
        batch_op.add_column(sa.Column("usage", JSONType, nullable=True))
        batch_op.add_column(sa.Column("providers", JSONType, nullable=True))
        batch_op.add_column(sa.Column("cost_usd", sa.Float(), nullable=True))
    with op.batch_alter_table("calls", schema=None) as batch_op:
        batch_op.add_column(sa.Column("usage", JSONType, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("calls", schema=None) as batch_op:
        batch_op.drop_column("usage")
    with op.batch_alter_table("turns", schema=None) as batch_op:
        batch_op.drop_column("cost_usd")
        batch_op.drop_column("providers")
        batch_op.drop_column("usage")

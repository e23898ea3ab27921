"""Telephony facts on the call row: answering-machine verdict, transfer target, transport counters

One call store for every channel: what the phone transport used to keep in process
(Twilio's answered_by, where a call was transferred, stream counters) lives on the row.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 23:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from voxline.memory.types import JSONType

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("calls", schema=None) as batch_op:
        batch_op.add_column(sa.Column("answered_by", sa.String(32), nullable=True))
        batch_op.add_column(sa.Column("transfer_to", sa.String(255), nullable=True))
        batch_op.add_column(sa.Column("transport_stats", JSONType, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("calls", schema=None) as batch_op:
        batch_op.drop_column("transport_stats")
        batch_op.drop_column("transfer_to")
        batch_op.drop_column("answered_by")

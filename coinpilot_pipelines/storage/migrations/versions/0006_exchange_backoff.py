"""exchange backoff: a Retry-After or ban shared by every run

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import coinpilot_pipelines.storage.types as cp_types

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table("exchange_backoff",
    sa.Column("exchange", sa.String(length=16), nullable=False),
    sa.Column("paused_until", cp_types.UtcTimestamp(), nullable=False),
    sa.Column("reason", sa.Text(), nullable=True),
    sa.Column("updated_at", cp_types.UtcTimestamp(), nullable=False),
    sa.PrimaryKeyConstraint("exchange", name=op.f("pk_exchange_backoff"))
    )

def downgrade() -> None:
    op.drop_table("exchange_backoff")

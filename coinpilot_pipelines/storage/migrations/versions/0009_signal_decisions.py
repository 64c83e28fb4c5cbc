"""signals carry the time they were decided, and the signal scan records the bars it looked at

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import coinpilot_pipelines.storage.types as cp_types

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("trade_signals", sa.Column("decided_at", cp_types.UtcTimestamp(), nullable=True))
    op.create_table("signal_scans",
    sa.Column("exchange", sa.String(length=16), nullable=False),
    sa.Column("symbol", sa.String(length=32), nullable=False),
    sa.Column("interval", sa.String(length=8), nullable=False),
    sa.Column("bar_open_time", cp_types.UtcTimestamp(), nullable=False),
    sa.Column("scanned_at", cp_types.UtcTimestamp(), nullable=False),
    sa.Column("signals", sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint("exchange", "symbol", "interval", "bar_open_time", name=op.f("pk_signal_scans"))
    )


def downgrade() -> None:
    op.drop_table("signal_scans")
    with op.batch_alter_table("trade_signals") as batch:
        batch.drop_column("decided_at")

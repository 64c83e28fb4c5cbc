"""gap segments: runs of missing bars and their repair history

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import coinpilot_pipelines.storage.types as cp_types

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table("gap_segments",
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
    sa.Column("exchange", sa.String(length=16), nullable=False),
    sa.Column("symbol", sa.String(length=32), nullable=False),
    sa.Column("interval", sa.String(length=8), nullable=False),
    sa.Column("from_open_time", cp_types.UtcTimestamp(), nullable=False),
    sa.Column("to_open_time", cp_types.UtcTimestamp(), nullable=False),
    sa.Column("missing_bars", sa.Integer(), nullable=False),
    sa.Column("remaining_bars", sa.Integer(), nullable=False),
    sa.Column("state", sa.String(length=16), nullable=False),
    sa.Column("source", sa.String(length=16), nullable=False),
    sa.Column("detected_at", cp_types.UtcTimestamp(), nullable=False),
    sa.Column("last_attempt_at", cp_types.UtcTimestamp(), nullable=True),
    sa.Column("next_attempt_at", cp_types.UtcTimestamp(), nullable=True),
    sa.Column("retry_count", sa.Integer(), server_default=sa.text("0"), nullable=False),
    sa.Column("empty_fetches", sa.Integer(), server_default=sa.text("0"), nullable=False),
    sa.Column("recovered_at", cp_types.UtcTimestamp(), nullable=True),
    sa.Column("merged_into", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
    sa.Column("reason", sa.Text(), nullable=True),
    sa.CheckConstraint("source IN ('ingest', 'scan', 'stream')", name=op.f("ck_gap_segments_source")),
    sa.CheckConstraint("state IN ('open', 'repairing', 'recovered', 'unrecoverable', 'merged')", name=op.f("ck_gap_segments_state")),
    sa.CheckConstraint("to_open_time > from_open_time", name=op.f("ck_gap_segments_half_open_range")),
    sa.ForeignKeyConstraint(["merged_into"], ["gap_segments.id"], name=op.f("fk_gap_segments_merged_into_gap_segments")),
    sa.PrimaryKeyConstraint("id", name=op.f("pk_gap_segments"))
    )
    with op.batch_alter_table("gap_segments", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_gap_segments_exchange_symbol_interval_state_from_open_time"), ["exchange", "symbol", "interval", "state", "from_open_time"], unique=False)
        batch_op.create_index(batch_op.f("ix_gap_segments_state_next_attempt_at"), ["state", "next_attempt_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("gap_segments", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_gap_segments_state_next_attempt_at"))
        batch_op.drop_index(batch_op.f("ix_gap_segments_exchange_symbol_interval_state_from_open_time"))

    op.drop_table("gap_segments")

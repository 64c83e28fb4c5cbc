"""market data foundation: candles and rejects

Revision ID: 0001
Revises: 
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import coinpilot_pipelines.storage.types as cp_types

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table("candle_rejects",
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
    sa.Column("exchange", sa.String(length=16), nullable=False),
    sa.Column("symbol", sa.String(length=32), nullable=False),
    sa.Column("interval", sa.String(length=8), nullable=False),
    sa.Column("open_time", cp_types.UtcTimestamp(), nullable=True),
    sa.Column("reason", sa.Text(), nullable=False),
    sa.Column("raw_payload", sa.Text(), nullable=False),
    sa.Column("payload_sha256", sa.String(length=64), nullable=False),
    sa.Column("source", sa.String(length=32), nullable=False),
    sa.Column("run_id", sa.String(length=64), nullable=True),
    sa.Column("rejected_at", cp_types.UtcTimestamp(), nullable=False),
    sa.PrimaryKeyConstraint("id", name=op.f("pk_candle_rejects")),
    sa.UniqueConstraint("exchange", "symbol", "interval", "payload_sha256", name=op.f("uq_candle_rejects_exchange_symbol_interval_payload_sha256"))
    )
    with op.batch_alter_table("candle_rejects", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_candle_rejects_exchange_symbol_interval_open_time"), ["exchange", "symbol", "interval", "open_time"], unique=False)

    op.create_table("ohlcv_candles",
    sa.Column("exchange", sa.String(length=16), nullable=False),
    sa.Column("symbol", sa.String(length=32), nullable=False),
    sa.Column("interval", sa.String(length=8), nullable=False),
    sa.Column("open_time", cp_types.UtcTimestamp(), nullable=False),
    sa.Column("close_time", cp_types.UtcTimestamp(), nullable=False),
    sa.Column("open", cp_types.ExactDecimal(), nullable=False),
    sa.Column("high", cp_types.ExactDecimal(), nullable=False),
    sa.Column("low", cp_types.ExactDecimal(), nullable=False),
    sa.Column("close", cp_types.ExactDecimal(), nullable=False),
    sa.Column("volume", cp_types.ExactDecimal(), nullable=False),
    sa.Column("quote_volume", cp_types.ExactDecimal(), nullable=True),
    sa.Column("trade_count", sa.BigInteger(), nullable=True),
    sa.Column("is_closed", sa.Boolean(), server_default=sa.text("(true)"), nullable=False),
    sa.Column("source", sa.String(length=32), nullable=False),
    sa.Column("ingested_at", cp_types.UtcTimestamp(), nullable=False),
    sa.PrimaryKeyConstraint("exchange", "symbol", "interval", "open_time", name=op.f("pk_ohlcv_candles"))
    )


def downgrade() -> None:
    op.drop_table("ohlcv_candles")
    with op.batch_alter_table("candle_rejects", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_candle_rejects_exchange_symbol_interval_open_time"))

    op.drop_table("candle_rejects")

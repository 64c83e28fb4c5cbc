"""trading: signals, paper trades, risk state, positions, order attempts and snapshots, AI decisions

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import coinpilot_pipelines.storage.types as cp_types

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table("live_positions",
    sa.Column("exchange", sa.String(length=16), nullable=False),
    sa.Column("market", sa.String(length=32), nullable=False),
    sa.Column("quantity", cp_types.ExactDecimal(), nullable=False),
    sa.Column("avg_price", cp_types.ExactDecimal(), nullable=False),
    sa.Column("realized_pnl", cp_types.ExactDecimal(), nullable=False),
    sa.Column("updated_at", cp_types.UtcTimestamp(), nullable=False),
    sa.PrimaryKeyConstraint("exchange", "market", name=op.f("pk_live_positions"))
    )
    op.create_table("risk_state",
    sa.Column("profile", sa.String(length=32), nullable=False),
    sa.Column("trading_day", cp_types.UtcTimestamp(), nullable=False),
    sa.Column("daily_realized_pnl", cp_types.ExactDecimal(), nullable=False),
    sa.Column("consecutive_losses", sa.Integer(), nullable=False),
    sa.Column("cooldown_until", cp_types.UtcTimestamp(), nullable=True),
    sa.Column("updated_at", cp_types.UtcTimestamp(), nullable=False),
    sa.PrimaryKeyConstraint("profile", name=op.f("pk_risk_state"))
    )
    op.create_table("trade_signals",
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
    sa.Column("signal_key", sa.String(length=128), nullable=False),
    sa.Column("exchange", sa.String(length=16), nullable=False),
    sa.Column("symbol", sa.String(length=32), nullable=False),
    sa.Column("interval", sa.String(length=8), nullable=False),
    sa.Column("strategy", sa.String(length=32), nullable=False),
    sa.Column("action", sa.String(length=8), nullable=False),
    sa.Column("bar_open_time", cp_types.UtcTimestamp(), nullable=False),
    sa.Column("reason", sa.Text(), nullable=False),
    sa.Column("probability", sa.Double(), nullable=True),
    sa.Column("close", cp_types.ExactDecimal(), nullable=False),
    sa.Column("context", sa.Text(), nullable=False),
    sa.Column("paper_trade_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
    sa.Column("status", sa.String(length=16), nullable=False),
    sa.Column("status_reason", sa.Text(), nullable=True),
    sa.Column("created_at", cp_types.UtcTimestamp(), nullable=False),
    sa.CheckConstraint("action IN ('enter', 'exit')", name=op.f("ck_trade_signals_action")),
    sa.CheckConstraint("status IN ('new', 'approved', 'confirmed', 'rejected', 'executed', 'expired')", name=op.f("ck_trade_signals_status")),
    sa.PrimaryKeyConstraint("id", name=op.f("pk_trade_signals")),
    sa.UniqueConstraint("signal_key", name=op.f("uq_trade_signals_signal_key"))
    )
    with op.batch_alter_table("trade_signals", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_trade_signals_status"), ["status"], unique=False)

    op.create_table("upbit_account_snapshots",
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
    sa.Column("taken_at", cp_types.UtcTimestamp(), nullable=False),
    sa.Column("currency", sa.String(length=16), nullable=False),
    sa.Column("balance", cp_types.ExactDecimal(), nullable=False),
    sa.Column("locked", cp_types.ExactDecimal(), nullable=False),
    sa.Column("avg_buy_price", cp_types.ExactDecimal(), nullable=True),
    sa.Column("unit_currency", sa.String(length=16), nullable=True),
    sa.PrimaryKeyConstraint("id", name=op.f("pk_upbit_account_snapshots"))
    )
    op.create_table("agent_decisions",
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
    sa.Column("signal_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
    sa.Column("created_at", cp_types.UtcTimestamp(), nullable=False),
    sa.Column("signal", sa.Text(), nullable=False),
    sa.Column("decision", sa.String(length=8), nullable=False),
    sa.Column("confidence", sa.Integer(), nullable=True),
    sa.Column("reasoning", sa.Text(), nullable=True),
    sa.Column("model", sa.String(length=64), nullable=True),
    sa.Column("latency_ms", sa.Integer(), nullable=True),
    sa.Column("error", sa.Text(), nullable=True),
    sa.CheckConstraint("decision IN ('CONFIRM', 'REJECT', 'SKIPPED')", name=op.f("ck_agent_decisions_decision")),
    sa.ForeignKeyConstraint(["signal_id"], ["trade_signals.id"], name=op.f("fk_agent_decisions_signal_id_trade_signals")),
    sa.PrimaryKeyConstraint("id", name=op.f("pk_agent_decisions"))
    )
    with op.batch_alter_table("agent_decisions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_agent_decisions_signal_id"), ["signal_id"], unique=False)

    op.create_table("paper_trades",
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
    sa.Column("exchange", sa.String(length=16), nullable=False),
    sa.Column("symbol", sa.String(length=32), nullable=False),
    sa.Column("interval", sa.String(length=8), nullable=False),
    sa.Column("strategy", sa.String(length=32), nullable=False),
    sa.Column("side", sa.String(length=8), nullable=False),
    sa.Column("entry_signal_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
    sa.Column("entry_time", cp_types.UtcTimestamp(), nullable=False),
    sa.Column("entry_price", cp_types.ExactDecimal(), nullable=False),
    sa.Column("quantity", cp_types.ExactDecimal(), nullable=False),
    sa.Column("entry_fee", cp_types.ExactDecimal(), nullable=False),
    sa.Column("exit_signal_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
    sa.Column("exit_time", cp_types.UtcTimestamp(), nullable=True),
    sa.Column("exit_price", cp_types.ExactDecimal(), nullable=True),
    sa.Column("exit_fee", cp_types.ExactDecimal(), nullable=True),
    sa.Column("exit_reason", sa.String(length=32), nullable=True),
    sa.Column("pnl", cp_types.ExactDecimal(), nullable=True),
    sa.Column("status", sa.String(length=8), nullable=False),
    sa.CheckConstraint("status IN ('open', 'closed')", name=op.f("ck_paper_trades_status")),
    sa.ForeignKeyConstraint(["entry_signal_id"], ["trade_signals.id"], name=op.f("fk_paper_trades_entry_signal_id_trade_signals")),
    sa.ForeignKeyConstraint(["exit_signal_id"], ["trade_signals.id"], name=op.f("fk_paper_trades_exit_signal_id_trade_signals")),
    sa.PrimaryKeyConstraint("id", name=op.f("pk_paper_trades")),
    sa.UniqueConstraint("entry_signal_id", name=op.f("uq_paper_trades_entry_signal_id")),
    sa.UniqueConstraint("exit_signal_id", name=op.f("uq_paper_trades_exit_signal_id"))
    )
    op.create_table("upbit_order_attempts",
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
    sa.Column("ts", cp_types.UtcTimestamp(), nullable=False),
    sa.Column("symbol", sa.String(length=32), nullable=False),
    sa.Column("action", sa.String(length=8), nullable=False),
    sa.Column("mode", sa.String(length=8), nullable=False),
    sa.Column("side", sa.String(length=4), nullable=False),
    sa.Column("ord_type", sa.String(length=8), nullable=False),
    sa.Column("price", cp_types.ExactDecimal(), nullable=True),
    sa.Column("volume", cp_types.ExactDecimal(), nullable=True),
    sa.Column("paper_trade_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
    sa.Column("identifier", sa.String(length=64), nullable=False),
    sa.Column("request_json", sa.Text(), nullable=False),
    sa.Column("response_json", sa.Text(), nullable=True),
    sa.Column("status", sa.String(length=16), nullable=False),
    sa.Column("error_msg", sa.Text(), nullable=True),
    sa.Column("uuid", sa.String(length=64), nullable=True),
    sa.Column("http_status", sa.Integer(), nullable=True),
    sa.Column("latency_ms", sa.Integer(), nullable=True),
    sa.Column("remaining_req", sa.String(length=64), nullable=True),
    sa.Column("retry_count", sa.Integer(), server_default=sa.text("0"), nullable=False),
    sa.Column("final_state", sa.String(length=16), nullable=True),
    sa.Column("executed_volume", cp_types.ExactDecimal(), nullable=True),
    sa.Column("paid_fee", cp_types.ExactDecimal(), nullable=True),
    sa.Column("avg_price", cp_types.ExactDecimal(), nullable=True),
    sa.CheckConstraint("mode IN ('shadow', 'test', 'live')", name=op.f("ck_upbit_order_attempts_mode")),
    sa.CheckConstraint("status IN ('sending', 'logged', 'test_ok', 'accepted', 'unknown', 'done', 'cancelled', 'error')", name=op.f("ck_upbit_order_attempts_status")),
    sa.ForeignKeyConstraint(["paper_trade_id"], ["paper_trades.id"], name=op.f("fk_upbit_order_attempts_paper_trade_id_paper_trades")),
    sa.PrimaryKeyConstraint("id", name=op.f("pk_upbit_order_attempts")),
    sa.UniqueConstraint("identifier", name=op.f("uq_upbit_order_attempts_identifier"))
    )
    with op.batch_alter_table("upbit_order_attempts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_upbit_order_attempts_status"), ["status"], unique=False)

    op.create_table("upbit_order_snapshots",
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
    sa.Column("attempt_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
    sa.Column("polled_at", cp_types.UtcTimestamp(), nullable=False),
    sa.Column("state", sa.String(length=16), nullable=False),
    sa.Column("executed_volume", cp_types.ExactDecimal(), nullable=True),
    sa.Column("remaining_volume", cp_types.ExactDecimal(), nullable=True),
    sa.Column("paid_fee", cp_types.ExactDecimal(), nullable=True),
    sa.Column("avg_price", cp_types.ExactDecimal(), nullable=True),
    sa.Column("trades_count", sa.Integer(), nullable=True),
    sa.Column("raw_json", sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(["attempt_id"], ["upbit_order_attempts.id"], name=op.f("fk_upbit_order_snapshots_attempt_id_upbit_order_attempts")),
    sa.PrimaryKeyConstraint("id", name=op.f("pk_upbit_order_snapshots"))
    )
    with op.batch_alter_table("upbit_order_snapshots", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_upbit_order_snapshots_attempt_id"), ["attempt_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("upbit_order_snapshots", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_upbit_order_snapshots_attempt_id"))

    op.drop_table("upbit_order_snapshots")
    with op.batch_alter_table("upbit_order_attempts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_upbit_order_attempts_status"))

    op.drop_table("upbit_order_attempts")
    op.drop_table("paper_trades")
    with op.batch_alter_table("agent_decisions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_agent_decisions_signal_id"))

    op.drop_table("agent_decisions")
    op.drop_table("upbit_account_snapshots")
    with op.batch_alter_table("trade_signals", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_trade_signals_status"))

    op.drop_table("trade_signals")
    op.drop_table("risk_state")
    op.drop_table("live_positions")

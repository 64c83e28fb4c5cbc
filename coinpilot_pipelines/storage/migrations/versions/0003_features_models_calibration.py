"""features, labels, promotion events, inference log and calibration reports

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import coinpilot_pipelines.storage.types as cp_types

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table("calibration_reports",
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
    sa.Column("created_at", cp_types.UtcTimestamp(), nullable=False),
    sa.Column("model_name", sa.String(length=64), nullable=False),
    sa.Column("model_version", sa.String(length=16), nullable=False),
    sa.Column("production_ece", sa.Double(), nullable=False),
    sa.Column("production_mce", sa.Double(), nullable=False),
    sa.Column("production_brier", sa.Double(), nullable=False),
    sa.Column("production_count", sa.Integer(), nullable=False),
    sa.Column("live_ece", sa.Double(), nullable=True),
    sa.Column("live_mce", sa.Double(), nullable=True),
    sa.Column("live_brier", sa.Double(), nullable=True),
    sa.Column("live_count", sa.Integer(), nullable=False),
    sa.Column("ece_gap", sa.Double(), nullable=True),
    sa.Column("ece_gap_exceeded", sa.Boolean(), nullable=False),
    sa.Column("drift", sa.Text(), nullable=False),
    sa.Column("recommend_retrain", sa.Boolean(), nullable=False),
    sa.Column("reason", sa.Text(), nullable=False),
    sa.Column("mlflow_run_id", sa.String(length=64), nullable=True),
    sa.Column("dagster_run_id", sa.String(length=64), nullable=True),
    sa.PrimaryKeyConstraint("id", name=op.f("pk_calibration_reports"))
    )
    op.create_table("candle_features",
    sa.Column("exchange", sa.String(length=16), nullable=False),
    sa.Column("symbol", sa.String(length=32), nullable=False),
    sa.Column("interval", sa.String(length=8), nullable=False),
    sa.Column("open_time", cp_types.UtcTimestamp(), nullable=False),
    sa.Column("close", sa.Double(), nullable=False),
    sa.Column("ret_1", sa.Double(), nullable=True),
    sa.Column("ret_5", sa.Double(), nullable=True),
    sa.Column("ret_10", sa.Double(), nullable=True),
    sa.Column("rsi_14", sa.Double(), nullable=True),
    sa.Column("rolling_vol_20", sa.Double(), nullable=True),
    sa.Column("ma_20", sa.Double(), nullable=True),
    sa.Column("ma_50", sa.Double(), nullable=True),
    sa.Column("ma_200", sa.Double(), nullable=True),
    sa.Column("bb_upper", sa.Double(), nullable=True),
    sa.Column("bb_lower", sa.Double(), nullable=True),
    sa.Column("bb_pct_b", sa.Double(), nullable=True),
    sa.Column("vol_ratio", sa.Double(), nullable=True),
    sa.Column("is_valid", sa.Boolean(), nullable=False),
    sa.Column("invalid_reason", sa.String(length=64), nullable=True),
    sa.Column("feature_set_version", sa.String(length=32), nullable=False),
    sa.Column("computed_at", cp_types.UtcTimestamp(), nullable=False),
    sa.PrimaryKeyConstraint("exchange", "symbol", "interval", "open_time", name=op.f("pk_candle_features"))
    )
    op.create_table("candle_labels",
    sa.Column("exchange", sa.String(length=16), nullable=False),
    sa.Column("symbol", sa.String(length=32), nullable=False),
    sa.Column("interval", sa.String(length=8), nullable=False),
    sa.Column("open_time", cp_types.UtcTimestamp(), nullable=False),
    sa.Column("label_version", sa.String(length=48), nullable=False),
    sa.Column("forward_return", sa.Double(), nullable=False),
    sa.Column("label", sa.SmallInteger(), nullable=True),
    sa.Column("outcome_at", cp_types.UtcTimestamp(), nullable=False),
    sa.PrimaryKeyConstraint("exchange", "symbol", "interval", "open_time", "label_version", name=op.f("pk_candle_labels"))
    )
    op.create_table("model_inference_log",
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
    sa.Column("exchange", sa.String(length=16), nullable=False),
    sa.Column("symbol", sa.String(length=32), nullable=False),
    sa.Column("interval", sa.String(length=8), nullable=False),
    sa.Column("open_time", cp_types.UtcTimestamp(), nullable=False),
    sa.Column("model_name", sa.String(length=64), nullable=False),
    sa.Column("model_version", sa.String(length=16), nullable=False),
    sa.Column("feature_set_version", sa.String(length=32), nullable=False),
    sa.Column("probability", sa.Double(), nullable=False),
    sa.Column("threshold", sa.Double(), nullable=False),
    sa.Column("decision", sa.String(length=8), nullable=False),
    sa.Column("horizon_bars", sa.Integer(), nullable=False),
    sa.Column("scored_at", cp_types.UtcTimestamp(), nullable=False),
    sa.Column("realized_label", sa.SmallInteger(), nullable=True),
    sa.Column("realized_return", sa.Double(), nullable=True),
    sa.Column("realized_at", cp_types.UtcTimestamp(), nullable=True),
    sa.CheckConstraint("decision IN ('long', 'flat')", name=op.f("ck_model_inference_log_decision")),
    sa.PrimaryKeyConstraint("id", name=op.f("pk_model_inference_log")),
    sa.UniqueConstraint("exchange", "symbol", "interval", "open_time", "model_name", "model_version", name=op.f("uq_model_inference_log_exchange_symbol_interval_open_time_model_name_model_version"))
    )
    with op.batch_alter_table("model_inference_log", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_model_inference_log_model_name_model_version_realized_at"), ["model_name", "model_version", "realized_at"], unique=False)

    op.create_table("promotion_events",
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
    sa.Column("decided_at", cp_types.UtcTimestamp(), nullable=False),
    sa.Column("model_name", sa.String(length=64), nullable=False),
    sa.Column("challenger_version", sa.String(length=16), nullable=False),
    sa.Column("champion_version", sa.String(length=16), nullable=True),
    sa.Column("promoted", sa.Boolean(), nullable=False),
    sa.Column("reason", sa.Text(), nullable=False),
    sa.Column("challenger_metrics", sa.Text(), nullable=False),
    sa.Column("champion_metrics", sa.Text(), nullable=True),
    sa.Column("auc_gain_ci_low", sa.Double(), nullable=True),
    sa.Column("auc_gain_ci_high", sa.Double(), nullable=True),
    sa.Column("eval_window_start", cp_types.UtcTimestamp(), nullable=False),
    sa.Column("eval_window_end", cp_types.UtcTimestamp(), nullable=False),
    sa.Column("dagster_run_id", sa.String(length=64), nullable=True),
    sa.PrimaryKeyConstraint("id", name=op.f("pk_promotion_events")),
    sa.UniqueConstraint("model_name", "challenger_version", name=op.f("uq_promotion_events_model_name_challenger_version"))
    )

def downgrade() -> None:
    op.drop_table("promotion_events")
    with op.batch_alter_table("model_inference_log", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_model_inference_log_model_name_model_version_realized_at"))

    op.drop_table("model_inference_log")
    op.drop_table("candle_labels")
    op.drop_table("candle_features")
    op.drop_table("calibration_reports")

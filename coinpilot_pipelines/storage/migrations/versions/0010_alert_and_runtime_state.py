"""alert states (deduplicated alerts) and runtime state (values the metrics exporter reads)

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import coinpilot_pipelines.storage.types as cp_types

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table("alert_states",
    sa.Column("kind", sa.String(length=64), nullable=False),
    sa.Column("subject", sa.String(length=128), nullable=False),
    sa.Column("state", sa.String(length=64), nullable=False),
    sa.Column("changed_at", cp_types.UtcTimestamp(), nullable=False),
    sa.PrimaryKeyConstraint("kind", "subject", name=op.f("pk_alert_states"))
    )
    op.create_table("runtime_state",
    sa.Column("key", sa.String(length=128), nullable=False),
    sa.Column("value", sa.Text(), nullable=False),
    sa.Column("updated_at", cp_types.UtcTimestamp(), nullable=False),
    sa.Column("dagster_run_id", sa.String(length=64), nullable=True),
    sa.PrimaryKeyConstraint("key", name=op.f("pk_runtime_state"))
    )


def downgrade() -> None:
    op.drop_table("runtime_state")
    op.drop_table("alert_states")

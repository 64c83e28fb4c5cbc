"""promotion events: the Brier skill gate against climatology and the bootstrap block length

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

COLUMNS = (("brier_skill", sa.Double()), ("brier_skill_ci_low", sa.Double()), ("brier_skill_ci_high", sa.Double()),
           ("bootstrap_block_bars", sa.Integer()))


def upgrade() -> None:
    for name, kind in COLUMNS:
        op.add_column("promotion_events", sa.Column(name, kind, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("promotion_events") as batch:
        for name, _ in reversed(COLUMNS):
            batch.drop_column(name)

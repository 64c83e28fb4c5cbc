"""order attempts refused by the size limits are recorded as `refused`, never sent

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01
"""

from __future__ import annotations

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_BEFORE = "status IN ('sending', 'logged', 'test_ok', 'accepted', 'unknown', 'done', 'cancelled', 'error')"
_AFTER = "status IN ('sending', 'logged', 'test_ok', 'accepted', 'unknown', 'done', 'cancelled', 'error', 'refused')"


def _replace_status_check(condition: str) -> None:
    with op.batch_alter_table("upbit_order_attempts") as batch:
        batch.drop_constraint(op.f("ck_upbit_order_attempts_status"), type_="check")
        batch.create_check_constraint("status", condition)


def upgrade() -> None:
    _replace_status_check(_AFTER)


def downgrade() -> None:
    _replace_status_check(_BEFORE)

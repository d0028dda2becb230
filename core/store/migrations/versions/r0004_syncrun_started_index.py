"""An index on syncrun.started_at: the scheduler finds who is due in one query over the last interval's runs.

Revision ID: 0004_syncrun_started_index
Revises: 0003_rate_slots_numbering
"""

from __future__ import annotations

from alembic import op

revision = "0004_syncrun_started_index"
down_revision: str | None = "0003_rate_slots_numbering"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_index("ix_syncrun_started", "syncrun", ["started_at"])


def downgrade() -> None:
    op.drop_index("ix_syncrun_started", table_name="syncrun")

"""Auto-pay rules opt in to charging long-overdue invoices (issue 14: every overdue invoice was charged today, one 552
days overdue among them, without a word).

- autopayrule.overdue_opt_in: whether the rule also charges an invoice more overdue than HALO_AUTOPAY_OVERDUE_DAYS
  (60 by default) on the day it would be charged. Every existing rule keeps its row and starts without the opt-in, so
  such invoices wait for someone to opt in on the Agreements page, seeing what that charges first.

Revision ID: 0009_autopay_overdue_opt_in
Revises: 0008_tenant_probes
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009_autopay_overdue_opt_in"
down_revision: str | None = "0008_tenant_probes"
branch_labels: str | None = None
depends_on: str | None = None

rule = sa.table("autopayrule", sa.column("overdue_opt_in", sa.Boolean()))


def upgrade() -> None:
    with op.batch_alter_table("autopayrule") as batch:
        batch.add_column(sa.Column("overdue_opt_in", sa.Boolean(), nullable=True))
    op.execute(rule.update().values(overdue_opt_in=sa.false()))
    with op.batch_alter_table("autopayrule") as batch:
        batch.alter_column("overdue_opt_in", existing_type=sa.Boolean(), nullable=False)


def downgrade() -> None:
    with op.batch_alter_table("autopayrule") as batch:
        batch.drop_column("overdue_opt_in")

"""The shared rate budget and numbering that follows a renumber job.

- rateslot: the requests each tenant was allowed recently, shared by every worker process
- connection.numbered_by: the Invoice Number Field the stored invoices are numbered by (today's invoices are numbered
  by the connection's field, so it starts equal to it)

Revision ID: 0003_rate_slots_numbering
Revises: 0002_jobs_bigint
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_rate_slots_numbering"
down_revision: str | None = "0002_jobs_bigint"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "rateslot",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("tenant_key", sa.String(), nullable=False),
        sa.Column("sent_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_rateslot_tenant_sent", "rateslot", ["tenant_key", "sent_at"])
    with op.batch_alter_table("connection") as batch:
        batch.add_column(sa.Column("numbered_by", sa.String(), nullable=True))
    op.execute("UPDATE connection SET numbered_by = invoice_number_field")
    with op.batch_alter_table("connection") as batch:
        batch.alter_column("numbered_by", existing_type=sa.String(), nullable=False)


def downgrade() -> None:
    with op.batch_alter_table("connection") as batch:
        batch.drop_column("numbered_by")
    op.drop_index("ix_rateslot_tenant_sent", table_name="rateslot")
    op.drop_table("rateslot")

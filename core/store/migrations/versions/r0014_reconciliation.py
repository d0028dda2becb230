"""Reconciliation against HaloPSA (issue 15).

- reconciliation: one comparison of a partner's HaloPSA invoices with the stored ones: counts on each side, unpaid
  count and amount per currency on each side (JSON), requests estimated before and used after, counts per drift kind
- driftitem: one invoice found differing (kind, HaloPSA's value, the stored value), cleared by a targeted resync

Revision ID: 0014_reconciliation
Revises: 0013_invoice_numbers
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014_reconciliation"
down_revision: str | None = "0013_invoice_numbers"
branch_labels: str | None = None
depends_on: str | None = None

COUNTS = ("requests_estimated", "requests_used", "halo_invoices", "local_invoices", "halo_outside_scope", "pending",
          "unreadable", "missing_here", "extra_here", "amount_differs", "status_differs", "outside_scope", "drift")


def upgrade() -> None:
    op.create_table(
        "reconciliation",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("partner_id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=True),
        sa.Column("job_id", sa.Integer(), nullable=True),
        sa.Column("requested_by", sa.String(), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
        sa.Column("invoices_created_since", sa.Date(), nullable=True),
        *(sa.Column(name, sa.Integer(), nullable=False) for name in COUNTS[:7]),
        sa.Column("halo_unpaid", sa.String(), nullable=False),
        sa.Column("local_unpaid", sa.String(), nullable=False),
        *(sa.Column(name, sa.Integer(), nullable=False) for name in COUNTS[7:]),
        sa.ForeignKeyConstraint(["partner_id"], ["partner.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_reconciliation_partner_started", "reconciliation", ["partner_id", "started_at"])
    op.create_index("ix_reconciliation_run_id", "reconciliation", ["run_id"])
    op.create_table(
        "driftitem",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("reconciliation_id", sa.Integer(), nullable=False),
        sa.Column("partner_id", sa.Integer(), nullable=False),
        sa.Column("halo_id", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("halo_value", sa.String(), nullable=True),
        sa.Column("local_value", sa.String(), nullable=True),
        sa.Column("cleared_at", sa.DateTime(), nullable=True),
        sa.Column("cleared_by_run", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["reconciliation_id"], ["reconciliation.id"]),
        sa.ForeignKeyConstraint(["partner_id"], ["partner.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("reconciliation_id", "kind", "halo_id"),
    )
    op.create_index("ix_driftitem_reconciliation_id", "driftitem", ["reconciliation_id"])
    op.create_index("ix_driftitem_partner_cleared", "driftitem", ["partner_id", "cleared_at"])


def downgrade() -> None:
    op.drop_table("driftitem")
    op.drop_table("reconciliation")

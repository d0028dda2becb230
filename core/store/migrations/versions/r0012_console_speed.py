"""What the console's pages read at fleet scale, read from less (issue 14: page scripts under 0.5 s at 5,000 partners).

- runday: one partner's finished runs of one kind started on one UTC day, by hand or not (core.store.run_days), and
  fleetrunday, the same summed over the fleet; the scheduler fills both from the runs, so nothing is copied here:
  until its first tick the page reads the runs themselves
- ix_syncrun_finished: the runs past the run-day mark, found by when they finished
- ix_invoice_status_currency: the fleet's unpaid value per currency, read from the index alone
- syncrun.retries and syncrun.rate_limited: of a run's requests, those sent again and the answers of HTTP 429 (the
  support bundle lists them; earlier runs read 0)
- ix_invoice_partner_agreement carries the columns the Agreements page totals and classifies by (currency, status,
  dates, amount due, voided, HaloPSA id), so a partner's 100,000 invoices are read from the index, not row by row

Revision ID: 0012_console_speed
Revises: 0011_syncrun_totals_index
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012_console_speed"
down_revision: str | None = "0011_syncrun_totals_index"
branch_labels: str | None = None
depends_on: str | None = None

AGREEMENT_INDEX = ["partner_id", "agreement_halo_id", "currency", "status", "due_date", "amount_due_cents",
                   "invoice_date", "voided", "halo_id"]


def _totals() -> list[sa.Column[int]]:
    return [sa.Column(name, sa.BigInteger() if name in ("created", "invoices_read") else sa.Integer(), nullable=False)
            for name in ("runs", "finished", "successful", "created", "invoices_read", "empty")]


def upgrade() -> None:
    op.create_table(
        "runday",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("partner_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("manual", sa.Boolean(), nullable=False),
        *_totals(),
        sa.ForeignKeyConstraint(["partner_id"], ["partner.id"]),
        sa.PrimaryKeyConstraint("day", "partner_id", "kind", "manual"),
    )
    op.create_table(
        "fleetrunday",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("manual", sa.Boolean(), nullable=False),
        *_totals(),
        sa.PrimaryKeyConstraint("day", "kind", "manual"),
    )
    for counter in ("retries", "rate_limited"):
        op.add_column("syncrun", sa.Column(counter, sa.Integer(), nullable=False, server_default="0"))
    op.create_index("ix_syncrun_finished", "syncrun", ["finished_at"])
    op.create_index("ix_invoice_status_currency", "invoice", ["status", "currency", "amount_due_cents"])
    op.drop_index("ix_invoice_partner_agreement", table_name="invoice")
    op.create_index("ix_invoice_partner_agreement", "invoice", AGREEMENT_INDEX)


def downgrade() -> None:
    op.drop_index("ix_invoice_partner_agreement", table_name="invoice")
    op.create_index("ix_invoice_partner_agreement", "invoice", ["partner_id", "agreement_halo_id"])
    op.drop_index("ix_invoice_status_currency", table_name="invoice")
    op.drop_index("ix_syncrun_finished", table_name="syncrun")
    with op.batch_alter_table("syncrun") as batch:  # SQLite drops a column by copying the table
        batch.drop_column("rate_limited")
        batch.drop_column("retries")
    op.drop_table("fleetrunday")
    op.drop_table("runday")
    op.execute("DELETE FROM setting WHERE key = 'runday_through'")

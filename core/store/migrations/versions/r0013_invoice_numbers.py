"""Indexes on an invoice's numbers within its partner: the invoice tracer finds an invoice by the number a person
types (the number shown, or the third-party number) without reading the partner's every invoice (100,000 invoices:
about 280 ms without them, under 10 ms with them; make bench, section 4).

Revision ID: 0013_invoice_numbers
Revises: 0012_console_speed
"""

from __future__ import annotations

from alembic import op

revision = "0013_invoice_numbers"
down_revision: str | None = "0012_console_speed"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_index("ix_invoice_partner_number", "invoice", ["partner_id", "display_number"])
    op.create_index("ix_invoice_partner_third_party", "invoice", ["partner_id", "third_party_number"])


def downgrade() -> None:
    op.drop_index("ix_invoice_partner_third_party", table_name="invoice")
    op.drop_index("ix_invoice_partner_number", table_name="invoice")

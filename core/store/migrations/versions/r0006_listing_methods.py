"""How each partner's listings are read from its HaloPSA (reference 11: tenants differ in sorting, date filters and
unpaid status codes).

- listingchoice: per partner and listing (invoice changes, customer changes, unpaid invoices), the method that works
  on its tenant (sorted window, date filter, status filter, full scan), why, and when it was decided

Revision ID: 0006_listing_methods
Revises: 0005_sessions_sign_in_throttle
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006_listing_methods"
down_revision: str | None = "0005_sessions_sign_in_throttle"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "listingchoice",
        sa.Column("partner_id", sa.Integer(), nullable=False),
        sa.Column("listing", sa.String(), nullable=False),
        sa.Column("tenant_key", sa.String(), nullable=False),
        sa.Column("method", sa.String(), nullable=False),
        sa.Column("reason", sa.String(), nullable=False),
        sa.Column("decided_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["partner_id"], ["partner.id"]),
        sa.PrimaryKeyConstraint("partner_id", "listing"),
    )


def downgrade() -> None:
    op.drop_table("listingchoice")

"""What each partner's HaloPSA supports, as its last capability probe found (reference 11).

- tenantprobe: per partner, the probe's findings (JSON), when it ran, its cost in requests, the tenant it ran on, and
  why the next run should probe again

Revision ID: 0008_tenant_probes
Revises: 0007_subtype_ids
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008_tenant_probes"
down_revision: str | None = "0007_subtype_ids"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "tenantprobe",
        sa.Column("partner_id", sa.Integer(), nullable=False),
        sa.Column("tenant_key", sa.String(), nullable=False),
        sa.Column("ran_at", sa.DateTime(), nullable=False),
        sa.Column("requests", sa.Integer(), nullable=False),
        sa.Column("result", sa.String(), nullable=False),
        sa.Column("stale_reason", sa.String(), nullable=True),
        sa.ForeignKeyConstraint(["partner_id"], ["partner.id"]),
        sa.PrimaryKeyConstraint("partner_id"),
    )


def downgrade() -> None:
    op.drop_table("tenantprobe")

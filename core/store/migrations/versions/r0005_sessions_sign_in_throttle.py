"""Console sessions and sign-in throttling.

- consolesession: one row per signed-in browser (the SHA-256 of its cookie token), ended by sign-out, idleness or age
- signinthrottle: recent sign-in failures per account and per client, and until when further attempts are refused

Revision ID: 0005_sessions_sign_in_throttle
Revises: 0004_syncrun_started_index
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_sessions_sign_in_throttle"
down_revision: str | None = "0004_syncrun_started_index"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "consolesession",
        sa.Column("token_hash", sa.String(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.Column("revoked_at", sa.DateTime(), nullable=True),
        sa.Column("client", sa.String(), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["user.id"]),
        sa.PrimaryKeyConstraint("token_hash"),
    )
    op.create_index("ix_consolesession_user_id", "consolesession", ["user_id"])
    op.create_table(
        "signinthrottle",
        sa.Column("scope", sa.String(), nullable=False),
        sa.Column("key", sa.String(), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("last_failure_at", sa.DateTime(), nullable=False),
        sa.Column("locked_until", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("scope", "key"),
    )


def downgrade() -> None:
    op.drop_table("signinthrottle")
    op.drop_index("ix_consolesession_user_id", table_name="consolesession")
    op.drop_table("consolesession")

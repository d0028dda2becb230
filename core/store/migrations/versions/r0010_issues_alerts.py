"""The Overview's issues worklist and its alerts (issue 14).

- issue: one problem of one partner (or of the fleet) with its type, severity, owner, first and last seen, when it
  resolved, how often it reopened, and a snooze (until, why, by whom)
- issueevent: each change of an issue (opened, escalated, reopened, resolved)
- alertdelivery: an issue event to send by e-mail or webhook (an outbox the worker sends and retries)

Revision ID: 0010_issues_alerts
Revises: 0009_autopay_overdue_opt_in
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010_issues_alerts"
down_revision: str | None = "0009_autopay_overdue_opt_in"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "issue",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("partner_id", sa.Integer(), nullable=True),
        sa.Column("type", sa.String(), nullable=False),
        sa.Column("severity", sa.String(), nullable=False),
        sa.Column("owner", sa.String(), nullable=False),
        sa.Column("detail", sa.String(), nullable=False),
        sa.Column("first_seen", sa.DateTime(), nullable=False),
        sa.Column("last_seen", sa.DateTime(), nullable=False),
        sa.Column("resolved_at", sa.DateTime(), nullable=True),
        sa.Column("reopened", sa.Integer(), nullable=False),
        sa.Column("snoozed_until", sa.DateTime(), nullable=True),
        sa.Column("snooze_reason", sa.String(), nullable=True),
        sa.Column("snoozed_by", sa.String(), nullable=True),
        sa.ForeignKeyConstraint(["partner_id"], ["partner.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("partner_id", "type"),
    )
    op.create_index("ix_issue_partner_id", "issue", ["partner_id"])
    op.create_table(
        "issueevent",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("issue_id", sa.Integer(), nullable=False),
        sa.Column("partner_id", sa.Integer(), nullable=True),
        sa.Column("type", sa.String(), nullable=False),
        sa.Column("change", sa.String(), nullable=False),
        sa.Column("severity", sa.String(), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("detail", sa.String(), nullable=False),
        sa.ForeignKeyConstraint(["issue_id"], ["issue.id"]),
        sa.ForeignKeyConstraint(["partner_id"], ["partner.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_issueevent_issue_id", "issueevent", ["issue_id"])
    op.create_index("ix_issueevent_at", "issueevent", ["at"])
    op.create_table(
        "alertdelivery",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("event_id", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(), nullable=False),
        sa.Column("state", sa.String(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(), nullable=False),
        sa.Column("sent_at", sa.DateTime(), nullable=True),
        sa.Column("last_error", sa.String(), nullable=True),
        sa.ForeignKeyConstraint(["event_id"], ["issueevent.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("event_id", "channel"),
    )
    op.create_index("ix_alertdelivery_due", "alertdelivery", ["state", "next_attempt_at"])


def downgrade() -> None:
    op.drop_table("alertdelivery")
    op.drop_table("issueevent")
    op.drop_table("issue")

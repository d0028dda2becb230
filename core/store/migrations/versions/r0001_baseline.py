"""Baseline: the schema of every database made before migrations (commit e22652e, `SQLModel.metadata.create_all`).

A database that has these tables but no alembic_version is stamped here, then upgraded.

Revision ID: 0001_baseline
Revises:
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0001_baseline"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None


def _id() -> sa.Column[Any]:
    return sa.Column("id", sa.Integer(), nullable=False)


def _partner(*, nullable: bool = False) -> sa.Column[Any]:
    return sa.Column("partner_id", sa.Integer(), nullable=nullable)


def _text(name: str, *, nullable: bool = False) -> sa.Column[Any]:
    return sa.Column(name, sa.String(), nullable=nullable)


def _int(name: str, *, nullable: bool = False) -> sa.Column[Any]:
    return sa.Column(name, sa.Integer(), nullable=nullable)


def _time(name: str, *, nullable: bool = True) -> sa.Column[Any]:
    return sa.Column(name, sa.DateTime(), nullable=nullable)


def _flag(name: str) -> sa.Column[Any]:
    return sa.Column(name, sa.Boolean(), nullable=False)


def _to_partner() -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(["partner_id"], ["partner.id"])


def upgrade() -> None:
    op.create_table(
        "partner", _id(), _text("name"), _text("status"), _time("created_at", nullable=False),
        _int("lock_run_id", nullable=True), _time("lock_heartbeat_at"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_partner_name", "partner", ["name"], unique=True)
    op.create_table(
        "connection", _id(), _partner(), _text("app_domain"), _text("tenant", nullable=True), _text("client_id"),
        _text("client_secret_encrypted"), sa.Column("invoices_created_since", sa.Date(), nullable=True),
        _text("invoice_number_field"), _text("integration_role"), _text("granted_scopes"), _text("missing_scopes"),
        _time("connected_at", nullable=False), _time("last_verified_at"), _text("last_error", nullable=True),
        sa.PrimaryKeyConstraint("id"), sa.UniqueConstraint("partner_id"), _to_partner(),
    )
    op.create_table(
        "customer", _id(), _partner(), _int("halo_id"), _text("name"), _flag("inactive"),
        _text("billing_email", nullable=True), _text("currency", nullable=True), _time("halo_last_modified"),
        _time("synced_at", nullable=False),
        sa.PrimaryKeyConstraint("id"), sa.UniqueConstraint("partner_id", "halo_id"), _to_partner(),
    )
    op.create_table(
        "agreement", _id(), _partner(), _int("halo_id"), _text("ref", nullable=True),
        _int("customer_halo_id", nullable=True), _int("subtype_id", nullable=True),
        _text("subtype_name", nullable=True), _text("type_name", nullable=True),
        sa.Column("start_date", sa.Date(), nullable=True), sa.Column("end_date", sa.Date(), nullable=True),
        _flag("active"), _time("halo_last_modified"), _time("synced_at", nullable=False),
        sa.PrimaryKeyConstraint("id"), sa.UniqueConstraint("partner_id", "halo_id"), _to_partner(),
    )
    op.create_table(
        "invoice", _id(), _partner(), _int("halo_id"), _text("invoice_number", nullable=True),
        _text("third_party_number", nullable=True), _text("display_number"), _flag("number_is_fallback"),
        _int("customer_halo_id", nullable=True), _text("customer_name", nullable=True),
        _int("agreement_halo_id", nullable=True), _text("agreement_ref", nullable=True),
        sa.Column("invoice_date", sa.Date(), nullable=True), sa.Column("due_date", sa.Date(), nullable=True),
        _int("total_cents"), _int("amount_paid_cents"), _int("amount_due_cents"), _text("currency", nullable=True),
        _flag("posted"), _flag("voided"), _text("status"), _time("halo_last_modified"),
        _int("first_seen_run_id", nullable=True), _int("last_changed_run_id", nullable=True),
        _time("synced_at", nullable=False),
        sa.PrimaryKeyConstraint("id"), sa.UniqueConstraint("partner_id", "halo_id"), _to_partner(),
    )
    op.create_index("ix_invoice_partner_agreement", "invoice", ["partner_id", "agreement_halo_id"])
    op.create_index("ix_invoice_partner_status_due", "invoice", ["partner_id", "status", "due_date"])
    op.create_table(
        "autopayrule", _id(), _partner(), _text("subtype_name"), _flag("enabled"), _text("trigger"), _int("days"),
        _int("max_amount_cents", nullable=True), _text("created_by"), _time("created_at", nullable=False),
        _time("updated_at", nullable=False),
        sa.PrimaryKeyConstraint("id"), sa.UniqueConstraint("partner_id", "subtype_name"), _to_partner(),
    )
    op.create_table(
        "syncrun", _id(), _partner(), _text("kind"), _text("trigger"), _text("triggered_by"), _text("status"),
        _time("started_at", nullable=False), _time("finished_at"), _time("heartbeat_at"), _time("window_start"),
        _time("window_end"), _text("worker", nullable=True),
        *(_int(name) for name in ("requests", "pages", "customers_seen", "agreements_seen", "invoices_seen",
                                  "created", "updated", "unchanged", "rejected")),
        _text("error_kind", nullable=True), _text("error", nullable=True),
        sa.PrimaryKeyConstraint("id"), _to_partner(),
    )
    op.create_index("ix_syncrun_partner_started", "syncrun", ["partner_id", "started_at"])
    op.create_table(
        "cooldown", _id(), _partner(), _text("kind"), _time("available_at", nullable=False),
        _time("previous_available_at"), _time("last_started_at"), _text("last_actor", nullable=True),
        _int("last_run_id", nullable=True), _int("refused_count"),
        sa.PrimaryKeyConstraint("id"), sa.UniqueConstraint("partner_id", "kind"), _to_partner(),
    )
    op.create_table(
        "auditevent", _id(), _time("at", nullable=False), _text("actor"), _partner(nullable=True), _text("action"),
        _text("detail"),
        sa.PrimaryKeyConstraint("id"), _to_partner(),
    )
    op.create_index("ix_auditevent_partner_id", "auditevent", ["partner_id"])
    op.create_index("ix_auditevent_at", "auditevent", ["at"])
    op.create_table(
        "user", _id(), _text("email"), _text("name"), _text("role"), _partner(nullable=True), _text("password_hash"),
        sa.PrimaryKeyConstraint("id"), _to_partner(),
    )
    op.create_index("ix_user_email", "user", ["email"], unique=True)
    op.create_table(
        "syncrecorderror", _id(), _int("run_id"), _partner(), _text("entity"), _int("halo_id", nullable=True),
        _text("reason"), _text("excerpt"),
        sa.PrimaryKeyConstraint("id"), sa.ForeignKeyConstraint(["run_id"], ["syncrun.id"]), _to_partner(),
    )
    op.create_index("ix_syncrecorderror_run_id", "syncrecorderror", ["run_id"])
    op.create_index("ix_syncrecorderror_partner_id", "syncrecorderror", ["partner_id"])


def downgrade() -> None:
    for table in ("syncrecorderror", "user", "auditevent", "cooldown", "syncrun", "autopayrule", "invoice",
                  "agreement", "customer", "connection", "partner"):
        op.drop_table(table)

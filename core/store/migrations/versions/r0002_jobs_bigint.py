"""Jobs, run progress, settings, BIGINT money and HaloPSA ids.

- job: the queue of syncs asked for (state, lane, lease and epoch; one active job per partner and kind)
- syncrun.job_id, .message, .waiting_until; cooldown.last_job_id
- setting: small key-value facts the database keeps (the sandbox epoch)
- BIGINT for every *_cents column and HaloPSA id (halo_id, customer_halo_id, agreement_halo_id, subtype_id)

A database the pre-migration code already gave the job table or the new columns (create_all at commit 9fa231d) keeps
them: only what is missing is added.

Revision ID: 0002_jobs_bigint
Revises: 0001_baseline
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0002_jobs_bigint"
down_revision: str | None = "0001_baseline"
branch_labels: str | None = None
depends_on: str | None = None

# table -> (column, nullable) made BIGINT
WIDENED: dict[str, list[tuple[str, bool]]] = {
    "customer": [("halo_id", False)],
    "agreement": [("halo_id", False), ("customer_halo_id", True), ("subtype_id", True)],
    "invoice": [("halo_id", False), ("customer_halo_id", True), ("agreement_halo_id", True), ("total_cents", False),
                ("amount_paid_cents", False), ("amount_due_cents", False)],
    "autopayrule": [("max_amount_cents", True)],
    "syncrecorderror": [("halo_id", True)],
}


def _added() -> dict[str, list[sa.Column[Any]]]:
    """The columns added to existing tables (new objects each time: a Column belongs to one table)."""
    return {
        "syncrun": [sa.Column("job_id", sa.Integer(), nullable=True), sa.Column("message", sa.String(), nullable=True),
                    sa.Column("waiting_until", sa.DateTime(), nullable=True)],
        "cooldown": [sa.Column("last_job_id", sa.Integer(), nullable=True)],
    }


def _retype(new: type[sa.Integer], old: type[sa.Integer]) -> None:
    bind = op.get_bind()
    for table, columns in WIDENED.items():
        if bind.dialect.name == "postgresql":  # one ALTER per table: PostgreSQL rewrites the table once, not per column
            clauses = ", ".join(f"ALTER COLUMN {name} TYPE {new().compile(dialect=bind.dialect)}"
                                for name, _ in columns)
            op.execute(f"ALTER TABLE {table} {clauses}")
            continue
        with op.batch_alter_table(table) as batch:
            for name, nullable in columns:
                batch.alter_column(name, type_=new(), existing_type=old(), existing_nullable=nullable)


def upgrade() -> None:
    inspector = sa.inspect(op.get_bind())
    existing = set(inspector.get_table_names())
    if "job" not in existing:
        op.create_table(
            "job",
            sa.Column("id", sa.Integer(), nullable=False),
            sa.Column("partner_id", sa.Integer(), nullable=False),
            sa.Column("kind", sa.String(), nullable=False),
            sa.Column("trigger", sa.String(), nullable=False),
            sa.Column("requested_by", sa.String(), nullable=False),
            sa.Column("lane", sa.String(), nullable=False),
            sa.Column("state", sa.String(), nullable=False),
            sa.Column("active_key", sa.String(), nullable=True),
            sa.Column("not_before", sa.DateTime(), nullable=False),
            sa.Column("created_at", sa.DateTime(), nullable=False),
            sa.Column("started_at", sa.DateTime(), nullable=True),
            sa.Column("finished_at", sa.DateTime(), nullable=True),
            sa.Column("lease_owner", sa.String(), nullable=True),
            sa.Column("lease_expires_at", sa.DateTime(), nullable=True),
            sa.Column("lease_epoch", sa.Integer(), nullable=False),
            sa.Column("attempts", sa.Integer(), nullable=False),
            sa.Column("run_id", sa.Integer(), nullable=True),
            sa.Column("cancel_requested_by", sa.String(), nullable=True),
            sa.Column("outcome", sa.String(), nullable=True),
            sa.PrimaryKeyConstraint("id"),
            sa.UniqueConstraint("active_key"),
            sa.ForeignKeyConstraint(["partner_id"], ["partner.id"]),
        )
        op.create_index("ix_job_claim", "job", ["state", "not_before"])
        op.create_index("ix_job_partner_id", "job", ["partner_id"])
    if "setting" not in existing:
        op.create_table(
            "setting",
            sa.Column("key", sa.String(), nullable=False),
            sa.Column("value", sa.String(), nullable=False),
            sa.PrimaryKeyConstraint("key"),
        )
    for table, columns in _added().items():
        present = {column["name"] for column in inspector.get_columns(table)}
        missing = [column for column in columns if column.name not in present]
        if missing:
            with op.batch_alter_table(table) as batch:
                for column in missing:
                    batch.add_column(column)
    if "ix_syncrun_job_id" not in {index["name"] for index in inspector.get_indexes("syncrun")}:
        op.create_index("ix_syncrun_job_id", "syncrun", ["job_id"])
    _retype(sa.BigInteger, sa.Integer)


def downgrade() -> None:
    _retype(sa.Integer, sa.BigInteger)
    op.drop_index("ix_syncrun_job_id", table_name="syncrun")
    for table, columns in _added().items():
        with op.batch_alter_table(table) as batch:
            for column in columns:
                batch.drop_column(column.name)
    op.drop_table("setting")
    op.drop_index("ix_job_partner_id", table_name="job")
    op.drop_index("ix_job_claim", table_name="job")
    op.drop_table("job")

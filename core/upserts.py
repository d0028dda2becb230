"""Bulk, idempotent upserts of one page of HaloPSA records, keyed by (partner, HaloPSA id).

Each call reads the page's existing rows in one query, inserts the new ones and updates only the rows whose synced
fields differ, so a rerun writes nothing and the counts (created, updated, unchanged) say what a run really changed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Table, bindparam, select, update
from sqlalchemy.engine import Connection

from core.halopsa import records
from core.models import Agreement, Customer, Invoice, InvoiceStatus, NumberField

CUSTOMER_FIELDS = ("name", "inactive", "billing_email", "currency", "halo_last_modified")
AGREEMENT_FIELDS = (
    "ref", "customer_halo_id", "subtype_id", "subtype_name", "type_name", "start_date", "end_date", "active",
    "halo_last_modified",
)
INVOICE_FIELDS = (
    "invoice_number", "third_party_number", "display_number", "number_is_fallback", "customer_halo_id",
    "customer_name", "agreement_halo_id", "agreement_ref", "invoice_date", "due_date", "total_cents",
    "amount_paid_cents", "amount_due_cents", "currency", "posted", "voided", "status", "halo_last_modified",
)


@dataclass
class Counts:
    created: int = 0
    updated: int = 0
    unchanged: int = 0

    def add(self, other: Counts) -> None:
        self.created += other.created
        self.updated += other.updated
        self.unchanged += other.unchanged


def invoice_status(*, voided: bool, amount_due_cents: int, amount_paid_cents: int) -> InvoiceStatus:
    """Paid, partially paid, unpaid or voided, from HaloPSA's amounts (reference 4.3: paid means nothing due)."""
    if voided:
        return InvoiceStatus.VOIDED
    if amount_due_cents <= 0:
        return InvoiceStatus.PAID
    if amount_paid_cents > 0:
        return InvoiceStatus.PARTIALLY_PAID
    return InvoiceStatus.UNPAID


def display_number(invoice_halo_id: int, third_party_number: str | None, field: str) -> tuple[str, bool]:
    """The number a partner sees, per its Invoice Number Field; falls back to the HaloPSA ID (flagged) when the
    third-party number is empty."""
    if field == NumberField.THIRD_PARTY:
        if third_party_number:
            return third_party_number, False
        return str(invoice_halo_id), True
    return str(invoice_halo_id), False


def customer_row(record: records.Customer) -> dict[str, Any]:
    return {
        "halo_id": record.halo_id, "name": record.name, "inactive": record.inactive,
        "billing_email": record.billing_email, "currency": record.currency,
        "halo_last_modified": record.last_modified,
    }


def agreement_row(record: records.Agreement) -> dict[str, Any]:
    return {
        "halo_id": record.halo_id, "ref": record.ref, "customer_halo_id": record.customer_halo_id,
        "subtype_id": record.subtype_id, "subtype_name": record.subtype_name, "type_name": record.type_name,
        "start_date": record.start_date, "end_date": record.end_date, "active": record.active,
        "halo_last_modified": record.last_modified,
    }


def invoice_row_factory(number_field: str) -> Callable[[records.Invoice], dict[str, Any]]:
    def invoice_row(record: records.Invoice) -> dict[str, Any]:
        number, fallback = display_number(record.halo_id, record.third_party_number, number_field)
        return {
            "halo_id": record.halo_id, "invoice_number": record.invoice_number,
            "third_party_number": record.third_party_number, "display_number": number,
            "number_is_fallback": fallback, "customer_halo_id": record.customer_halo_id,
            "customer_name": record.customer_name, "agreement_halo_id": record.agreement_halo_id,
            "agreement_ref": record.agreement_ref, "invoice_date": record.invoice_date, "due_date": record.due_date,
            "total_cents": record.total_cents, "amount_paid_cents": record.amount_paid_cents,
            "amount_due_cents": record.amount_due_cents, "currency": record.currency, "posted": record.posted,
            "voided": record.voided,
            "status": invoice_status(
                voided=record.voided, amount_due_cents=record.amount_due_cents,
                amount_paid_cents=record.amount_paid_cents,
            ).value,
            "halo_last_modified": record.last_modified,
        }

    return invoice_row


def upsert_rows(
    conn: Connection,
    table: Table,
    fields: Sequence[str],
    rows: list[dict[str, Any]],
    *,
    partner_id: int,
    now: datetime,
    run_id: int | None = None,
) -> Counts:
    """Insert new rows, update changed ones, leave equal ones alone; returns what happened."""
    counts = Counts()
    if not rows:
        return counts
    by_id = {row["halo_id"]: row for row in rows}  # a page repeating an id keeps its last copy
    columns = [table.c.id, table.c.halo_id, *(table.c[name] for name in fields)]
    existing = {
        found.halo_id: found
        for found in conn.execute(
            select(*columns).where(table.c.partner_id == partner_id, table.c.halo_id.in_(list(by_id)))
        )
    }
    tracks_runs = "last_changed_run_id" in table.c
    inserts: list[dict[str, Any]] = []
    updates: list[dict[str, Any]] = []
    for halo_id, row in by_id.items():
        current = existing.get(halo_id)
        if current is None:
            row.update(partner_id=partner_id, synced_at=now)
            if tracks_runs:
                row.update(first_seen_run_id=run_id, last_changed_run_id=run_id)
            inserts.append(row)
        elif any(getattr(current, name) != row[name] for name in fields):
            row.update(_id=current.id, synced_at=now)
            if tracks_runs:
                row["last_changed_run_id"] = run_id
            updates.append(row)
        else:
            counts.unchanged += 1
    if inserts:
        conn.execute(table.insert(), inserts)
        counts.created = len(inserts)
    if updates:
        # bind names must differ from column names in an executemany UPDATE
        names = [*fields, "synced_at", *(["last_changed_run_id"] if tracks_runs else [])]
        statement = (
            update(table)
            .where(table.c.id == bindparam("_id"))
            .values({name: bindparam(f"v_{name}") for name in names})
        )
        conn.execute(statement, [{"_id": row["_id"], **{f"v_{n}": row[n] for n in names}} for row in updates])
        counts.updated = len(updates)
    return counts


CUSTOMER_TABLE: Table = Customer.__table__  # type: ignore[attr-defined]
AGREEMENT_TABLE: Table = Agreement.__table__  # type: ignore[attr-defined]
INVOICE_TABLE: Table = Invoice.__table__  # type: ignore[attr-defined]

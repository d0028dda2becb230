"""What the sync knows about each entity (customer, agreement, invoice), in the spirit of the Meltano SDK's streams:
its table and the fields a sync writes, the run counter of records seen, how a HaloPSA record becomes a row, and how
the client lists it (all of it, or what changed since a moment). The engine holds no per-entity branches.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Table, case

from core.halopsa import records
from core.halopsa.client import HaloClient
from core.halopsa.paging import ListingReport, Method, Page
from core.store.tables import AGREEMENT_TABLE, CUSTOMER_TABLE, INVOICE_TABLE, InvoiceStatus, NumberField

RowBuilder = Callable[[Any], dict[str, Any]]


class Entity(StrEnum):
    CUSTOMER = "customer"
    AGREEMENT = "agreement"
    INVOICE = "invoice"


CUSTOMER_FIELDS = ("name", "inactive", "billing_email", "currency", "halo_last_modified")
AGREEMENT_FIELDS = (
    "ref", "customer_halo_id", "subtype_id", "type_name", "start_date", "end_date", "active", "halo_last_modified",
)
INVOICE_FIELDS = (
    "invoice_number", "third_party_number", "display_number", "number_is_fallback", "customer_halo_id",
    "customer_name", "agreement_halo_id", "agreement_ref", "invoice_date", "due_date", "total_cents",
    "amount_paid_cents", "amount_due_cents", "currency", "posted", "voided", "status", "halo_last_modified",
)


def invoice_status(*, voided: bool, amount_due_cents: int, amount_paid_cents: int, credit: bool = False,
                   posted: bool = True) -> InvoiceStatus:
    """An invoice's status as HaloPSA has it, in this order: voided; a credit note; not posted (a draft or awaiting
    approval); then from the amounts (reference 4.3: paid means nothing due), paid, partially paid or unpaid. Only the
    last two are owed (UNPAID_STATUSES), so a credit note or a draft is never unpaid and never auto-paid."""
    return InvoiceStatus(_status_value(voided, credit, posted, amount_due_cents, amount_paid_cents))


_VOIDED, _CREDIT, _DRAFT, _PAID, _PARTIALLY_PAID, _UNPAID = (status.value for status in (
    InvoiceStatus.VOIDED, InvoiceStatus.CREDIT, InvoiceStatus.DRAFT, InvoiceStatus.PAID, InvoiceStatus.PARTIALLY_PAID,
    InvoiceStatus.UNPAID))


def _status_value(voided: bool, credit: bool, posted: bool, amount_due_cents: int, amount_paid_cents: int) -> str:
    if voided:
        return _VOIDED
    if credit:
        return _CREDIT
    if not posted:
        return _DRAFT
    if amount_due_cents <= 0:
        return _PAID
    if amount_paid_cents > 0:
        return _PARTIALLY_PAID
    return _UNPAID


DELETED_INVOICE: dict[str, Any] = {"status": InvoiceStatus.DELETED.value}
"""What a stored invoice becomes once HaloPSA answers 404 for it by id after it was absent from the listing read:
deleted, neither unpaid nor voided; its amounts, dates and flags stay as last read, for history. A later listing that
shows it again brings it back to its status there."""
DELETED_NOTE = "not found in HaloPSA by its id and absent from its listings: kept here as deleted"
"""The record note a run keeps for each invoice it marks deleted."""


NUMBER_FIELD_LABELS = {NumberField.HALO_ID: "HaloPSA ID", NumberField.THIRD_PARTY: "Third Party Invoice Number"}


def display_number(invoice_halo_id: int, third_party_number: str | None, field: str) -> tuple[str, bool]:
    """The number a partner sees, per its Invoice Number Field; falls back to the HaloPSA ID (flagged) when the
    third-party number is empty."""
    if field == NumberField.THIRD_PARTY:
        if third_party_number:
            return third_party_number, False
        return str(invoice_halo_id), True
    return str(invoice_halo_id), False


def renumbered(field: NumberField) -> dict[str, Any]:
    """`display_number` in SQL: the new values of every stored invoice's number and fallback flag."""
    c = INVOICE_TABLE.c
    halo_id = c.halo_id.cast(c.display_number.type)
    if field == NumberField.THIRD_PARTY:
        has_number = c.third_party_number.is_not(None) & (c.third_party_number != "")
        return {"display_number": case((has_number, c.third_party_number), else_=halo_id),
                "number_is_fallback": ~has_number}
    return {"display_number": halo_id, "number_is_fallback": False}


def customer_row(record: records.Customer) -> dict[str, Any]:
    return {
        "halo_id": record.halo_id, "name": record.name, "inactive": record.inactive,
        "billing_email": record.billing_email, "currency": record.currency,
        "halo_last_modified": record.last_modified,
    }


def agreement_row(record: records.Agreement) -> dict[str, Any]:
    return {
        "halo_id": record.halo_id, "ref": record.ref, "customer_halo_id": record.customer_halo_id,
        "subtype_id": record.subtype_id, "type_name": record.type_name,
        "start_date": record.start_date, "end_date": record.end_date, "active": record.active,
        "halo_last_modified": record.last_modified,
    }


def invoice_row_factory(number_field: str) -> Callable[[records.Invoice], dict[str, Any]]:
    def invoice_row(record: records.Invoice) -> dict[str, Any]:
        # once per invoice in a sync: plain positional calls, the status as its stored text
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
            "status": _status_value(record.voided, record.credit, record.posted, record.amount_due_cents,
                                    record.amount_paid_cents),
            "halo_last_modified": record.last_modified,
        }

    return invoice_row


def in_scope(record: records.Invoice, since: date | None) -> bool:
    """Invoices Created Since applies to every invoice sync, not only the backfill."""
    return since is None or record.invoice_date is None or record.invoice_date >= since


@dataclass(frozen=True)
class Stream:
    """One entity as the sync sees it. `connection` is the partner's stored connection row."""

    entity: Entity
    table: Table
    fields: tuple[str, ...]
    seen_counter: str
    row_builder: Callable[[NumberField], RowBuilder]  # given the field the stored invoices are numbered by
    list_all: Callable[[HaloClient, Any], Iterable[Page[Any]]]
    list_changed: Callable[[HaloClient, datetime, Method, ListingReport], Iterable[Page[Any]]] | None
    """What changed since a moment, read by a method (or the next the tenant honours) that the report then names."""

    def keep(self, connection: Any, found: list[Any]) -> list[Any]:
        """The records of a page this partner syncs (Invoices Created Since drops older invoices)."""
        since = connection.invoices_created_since if self.entity == Entity.INVOICE else None
        return found if since is None else [record for record in found if in_scope(record, since)]


CUSTOMERS = Stream(
    Entity.CUSTOMER, CUSTOMER_TABLE, CUSTOMER_FIELDS, "customers_seen", lambda _numbered_by: customer_row,
    lambda client, _connection: client.iter_customers(),
    lambda client, since, method, report: client.iter_changed_customers(since=since, method=method, report=report),
)
# HaloPSA's contract listing has no change order we rely on: agreements are always read whole (they are few)
AGREEMENTS = Stream(
    Entity.AGREEMENT, AGREEMENT_TABLE, AGREEMENT_FIELDS, "agreements_seen", lambda _numbered_by: agreement_row,
    lambda client, _connection: client.iter_agreements(), None,
)
INVOICES = Stream(
    Entity.INVOICE, INVOICE_TABLE, INVOICE_FIELDS, "invoices_seen",
    invoice_row_factory,
    lambda client, connection: client.iter_invoices(created_since=connection.invoices_created_since),
    lambda client, since, method, report: client.iter_changed_invoices(since=since, method=method, report=report),
)

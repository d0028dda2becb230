"""A small hand-built book of customers, agreements and invoices (written through the real upserts), each invoice
chosen to land in one auto-pay reason and one aging bucket. Today is tests.support.clock.NOW: 2026-11-02."""

from __future__ import annotations

from datetime import date

from sqlalchemy.engine import Engine

from core.halopsa import records
from core.store import tables, upserts
from core.store.tables import NumberField
from core.sync import streams
from tests.support.clock import NOW
from tests.support.subtype_names import name_subtypes

CUSTOMERS = {1: "Alpha Co", 2: "=HYPERLINK(\"http://evil.example\")", 3: "Gamma Ltd"}
SUBTYPES = {1: "Managed Services", 2: "Backup"}  # subtype id -> name, from a verified lookup
# halo_id: (ref, subtype id, active)
AGREEMENTS = {1: ("MS-1", 1, True), 2: ("BK-2", 2, True), 3: ("MS-3", 1, False)}


def invoice(halo_id: int, *, agreement: int | None = 1, customer: int = 1, due: date | None, total: int,
            paid: int = 0, voided: bool = False, number: str | None = "auto",
            invoice_date: date | None = date(2026, 10, 1)) -> records.Invoice:
    """Amounts in cents; `number` is the third-party number ("auto": INV-<id>, None: missing)."""
    return records.Invoice(
        halo_id=halo_id, invoice_number=str(halo_id),
        third_party_number=f"INV-{halo_id}" if number == "auto" else number,
        customer_halo_id=customer, customer_name=CUSTOMERS[customer], agreement_halo_id=agreement, agreement_ref=None,
        invoice_date=invoice_date, due_date=due, total_cents=total, amount_paid_cents=paid,
        amount_due_cents=0 if voided else total - paid, currency="USD", posted=True, voided=voided, last_modified=NOW,
    )


# What each invoice is for: under an "on due date, max 2500.00" rule for Managed Services, and in the invoice table.
BOOK = [
    invoice(101, due=date(2026, 11, 7), total=10_000),                      # covered, charge 11-07; current
    invoice(102, due=date(2026, 10, 20), total=50_000),                     # covered, charge today; 1-30
    invoice(103, due=date(2026, 8, 1), total=300_000),                      # over maximum; 90+ (93 days)
    invoice(104, due=date(2026, 10, 1), total=20_000, paid=20_000),         # already paid (not in the table)
    invoice(105, due=date(2026, 10, 1), total=20_000, voided=True),         # voided (not in the table)
    invoice(106, agreement=3, due=date(2026, 10, 30), total=7_000),         # agreement inactive; 1-30
    invoice(107, due=None, total=4_000, customer=3),                        # no due date; current
    invoice(108, agreement=2, due=date(2026, 9, 15), total=8_000),          # Backup: subtype not mapped; 31-60
    invoice(109, agreement=None, customer=2, due=date(2026, 10, 1), total=1_500),  # no agreement; 31-60
    invoice(110, due=date(2026, 9, 1), total=20_000, paid=5_000, number=None),     # partially paid, covered;
]                                                                                  # 61-90; number falls back


def add_book(engine: Engine, partner_id: int, invoices: list[records.Invoice] | None = None, *,
             number_field: NumberField = NumberField.THIRD_PARTY) -> None:
    customers = [records.Customer(halo_id=i, name=name, inactive=False, billing_email=None, currency="USD",
                                  last_modified=NOW) for i, name in CUSTOMERS.items()]
    agreements = [records.Agreement(halo_id=i, ref=ref, customer_halo_id=1, subtype_id=subtype_id,
                                    type_name="Recurring", start_date=date(2026, 1, 1), end_date=None, active=active,
                                    last_modified=NOW) for i, (ref, subtype_id, active) in AGREEMENTS.items()]
    build = streams.invoice_row_factory(number_field)
    with engine.begin() as conn:
        upserts.upsert_rows(conn, tables.CUSTOMER_TABLE, streams.CUSTOMER_FIELDS,
                            [streams.customer_row(c) for c in customers], partner_id=partner_id, now=NOW)
        upserts.upsert_rows(conn, tables.AGREEMENT_TABLE, streams.AGREEMENT_FIELDS,
                            [streams.agreement_row(a) for a in agreements], partner_id=partner_id, now=NOW)
        upserts.upsert_rows(conn, tables.INVOICE_TABLE, streams.INVOICE_FIELDS,
                            [build(i) for i in (BOOK if invoices is None else invoices)], partner_id=partner_id,
                            now=NOW)
    name_subtypes(engine, partner_id, SUBTYPES, now=NOW)

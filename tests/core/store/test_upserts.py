from datetime import date, timedelta

import pytest
from sqlalchemy import func, select

from core.halopsa.records import Invoice
from core.store import tables, upserts
from core.store.tables import InvoiceStatus, NumberField
from core.sync import streams
from tests.support.clock import NOW
from tests.support.factories import add_partner


def make_invoice(halo_id: int, **changes) -> Invoice:
    fields = {
        "halo_id": halo_id, "invoice_number": str(halo_id), "third_party_number": f"INV-{halo_id:05d}",
        "customer_halo_id": 7, "customer_name": "Globex", "agreement_halo_id": 3, "agreement_ref": "MSA-1",
        "invoice_date": date(2026, 10, 1), "due_date": date(2026, 10, 31), "total_cents": 120000,
        "amount_paid_cents": 0, "amount_due_cents": 120000, "currency": "USD", "posted": True, "voided": False,
        "last_modified": NOW - timedelta(days=1),
    }
    fields.update(changes)
    return Invoice(**fields)


@pytest.mark.parametrize(
    ("voided", "due", "paid", "status"),
    [(True, 0, 0, InvoiceStatus.VOIDED), (False, 0, 100, InvoiceStatus.PAID),
     (False, 50, 50, InvoiceStatus.PARTIALLY_PAID), (False, 100, 0, InvoiceStatus.UNPAID),
     (False, -5, 105, InvoiceStatus.PAID)],
)
def test_invoice_status_follows_the_amounts(voided, due, paid, status):
    assert streams.invoice_status(voided=voided, amount_due_cents=due, amount_paid_cents=paid) == status


def test_display_number_follows_the_number_field_with_a_visible_fallback():
    assert streams.display_number(42, "INV-9", NumberField.HALO_ID) == ("42", False)
    assert streams.display_number(42, "INV-9", NumberField.THIRD_PARTY) == ("INV-9", False)
    assert streams.display_number(42, None, NumberField.THIRD_PARTY) == ("42", True)


def _upsert(engine, partner_id, invoices, run_id=None):
    build = streams.invoice_row_factory(NumberField.THIRD_PARTY)
    with engine.begin() as conn:
        return upserts.upsert_rows(conn, tables.INVOICE_TABLE, streams.INVOICE_FIELDS, [build(i) for i in invoices],
                                   partner_id=partner_id, now=NOW, run_id=run_id)


def test_upsert_creates_then_updates_only_what_changed_and_is_idempotent(engine, settings):
    partner_id = add_partner(engine, settings, now=NOW)
    first = _upsert(engine, partner_id, [make_invoice(1), make_invoice(2), make_invoice(3, third_party_number=None)],
                    run_id=1)
    assert (first.created, first.updated, first.unchanged) == (3, 0, 0)
    again = _upsert(engine, partner_id, [make_invoice(1), make_invoice(2), make_invoice(3, third_party_number=None)],
                    run_id=2)
    assert (again.created, again.updated, again.unchanged) == (0, 0, 3)
    paid = _upsert(engine, partner_id, [make_invoice(2, amount_paid_cents=120000, amount_due_cents=0)], run_id=3)
    assert (paid.created, paid.updated, paid.unchanged) == (0, 1, 0)

    with engine.connect() as conn:
        rows = {r.halo_id: r for r in conn.execute(select(tables.INVOICE_TABLE))}
    assert len(rows) == 3
    assert rows[2].status == "paid" and rows[2].last_changed_run_id == 3 and rows[2].first_seen_run_id == 1
    assert rows[1].last_changed_run_id == 1
    assert (rows[3].display_number, rows[3].number_is_fallback) == ("3", True)
    assert rows[1].display_number == "INV-00001"


def test_upsert_keeps_partners_apart_and_collapses_duplicates_in_a_page(engine, settings):
    a = add_partner(engine, settings, name="A", now=NOW)
    b = add_partner(engine, settings, name="B", now=NOW)
    assert _upsert(engine, a, [make_invoice(1), make_invoice(1, total_cents=5)]).created == 1
    assert _upsert(engine, b, [make_invoice(1)]).created == 1
    with engine.connect() as conn:
        totals = dict(conn.execute(select(tables.INVOICE_TABLE.c.partner_id, tables.INVOICE_TABLE.c.total_cents)).all())
        count = conn.scalar(select(func.count()).select_from(tables.INVOICE_TABLE))
    assert count == 2
    assert totals == {a: 5, b: 120000}

from datetime import date, timedelta

import pytest

from core.halopsa import records
from core.store.tables import UNPAID_STATUSES, InvoiceStatus, NumberField, SyncRun
from core.sync import streams
from core.sync.streams import AGREEMENTS, CUSTOMERS, INVOICES
from tests.support.clock import NOW


def _invoice(halo_id: int, invoice_date: date | None) -> records.Invoice:
    return records.Invoice(halo_id=halo_id, invoice_number=str(halo_id), third_party_number=None, customer_halo_id=1,
                           customer_name="Globex", agreement_halo_id=None, agreement_ref=None,
                           invoice_date=invoice_date, due_date=None, total_cents=100, amount_paid_cents=0,
                           amount_due_cents=100, currency="USD", posted=True, voided=False, last_modified=NOW)


class _Connection:
    invoices_created_since = date(2026, 10, 1)


@pytest.mark.parametrize("stream", [CUSTOMERS, AGREEMENTS, INVOICES])
def test_every_stream_counts_what_it_sees_in_a_run_counter_and_writes_only_its_table_columns(stream):
    assert stream.seen_counter in SyncRun.model_fields
    assert set(stream.fields) <= set(stream.table.c.keys())


def test_invoices_created_since_keeps_newer_and_undated_invoices_only():
    found = [_invoice(1, date(2026, 9, 30)), _invoice(2, date(2026, 10, 1)), _invoice(3, None)]
    assert [r.halo_id for r in INVOICES.keep(_Connection(), found)] == [2, 3]
    assert CUSTOMERS.keep(_Connection(), found) == found  # the cut-off is for invoices only


def test_the_invoice_row_follows_the_field_the_invoices_are_numbered_by():
    row = INVOICES.row_builder(NumberField.THIRD_PARTY)(_invoice(7, NOW.date() - timedelta(days=1)))
    assert (row["display_number"], row["number_is_fallback"], row["status"]) == ("7", True, "unpaid")
    assert streams.display_number(7, "INV-7", "third_party") == ("INV-7", False)


def test_agreements_are_only_ever_listed_whole():
    assert AGREEMENTS.list_changed is None and CUSTOMERS.list_changed and INVOICES.list_changed


def _with(**fields) -> records.Invoice:
    base = _invoice(9, NOW.date())
    for name, value in fields.items():
        setattr(base, name, value)
    return base


@pytest.mark.parametrize(("fields", "status"), [
    ({}, "unpaid"),
    ({"amount_paid_cents": 40, "amount_due_cents": 60}, "partially_paid"),
    ({"amount_paid_cents": 100, "amount_due_cents": 0}, "paid"),
    ({"voided": True, "amount_due_cents": 0}, "voided"),
    # issue 12: a credit note (negative total and amount due) was stored as paid
    ({"total_cents": -100, "amount_due_cents": -100, "credit": True}, "credit"),
    ({"total_cents": -100, "amount_due_cents": -100, "credit": True, "voided": True}, "voided"),
    ({"total_cents": -100, "amount_due_cents": -100, "credit": True, "posted": False}, "credit"),
    # issue 12: a draft (posted=false) was stored as unpaid
    ({"posted": False}, "draft"),
    ({"posted": False, "amount_paid_cents": 100, "amount_due_cents": 0}, "draft"),
])
def test_the_stored_status_is_halopsas(fields, status):
    row = INVOICES.row_builder(NumberField.HALO_ID)(_with(**fields))
    assert row["status"] == status
    assert streams.invoice_status(voided=row["voided"], amount_due_cents=row["amount_due_cents"],
                                  amount_paid_cents=row["amount_paid_cents"], credit=_with(**fields).credit,
                                  posted=row["posted"]) == status


def test_only_posted_non_credit_unpaid_invoices_are_unpaid():
    assert set(UNPAID_STATUSES) == {"unpaid", "partially_paid"}
    assert {status.value for status in InvoiceStatus} - set(UNPAID_STATUSES) == {
        "paid", "voided", "credit", "draft", "deleted"}


def test_an_invoice_deleted_in_halopsa_keeps_its_history_and_is_neither_unpaid_nor_voided():
    assert streams.DELETED_INVOICE == {"status": "deleted"}  # amounts, dates and flags stay as last read
    assert "deleted" in streams.DELETED_NOTE

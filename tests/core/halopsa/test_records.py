"""Wire JSON -> typed records: UTC times, null sentinels, exact money, unknown fields, readable rejections."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.halopsa.records import (
    RecordError,
    parse_agreement,
    parse_customer,
    parse_date,
    parse_invoice,
    parse_time,
    to_cents,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2025-01-31T10:22:13", datetime(2025, 1, 31, 10, 22, 13, tzinfo=UTC)),
        ("2025-01-31T10:22:13Z", datetime(2025, 1, 31, 10, 22, 13, tzinfo=UTC)),
        ("2020-07-03T12:53:40.262Z", datetime(2020, 7, 3, 12, 53, 40, 262000, tzinfo=UTC)),
        ("2025-01-31T10:22:13.1234567", datetime(2025, 1, 31, 10, 22, 13, 123456, tzinfo=UTC)),  # .NET ticks
        ("2025-01-31T12:22:13+02:00", datetime(2025, 1, 31, 10, 22, 13, tzinfo=UTC)),
        ("2025-01-31", datetime(2025, 1, 31, tzinfo=UTC)),
    ],
)
def test_times_are_utc_and_zone_less_means_utc(text: str, expected: datetime) -> None:
    parsed = parse_time(text)
    assert parsed == expected
    assert parsed is not None and parsed.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    "sentinel", ["1900-01-01T00:00:00", "0001-01-01T00:00:00", "0001-01-01T00:00:00Z", "1900-01-01", "", None]
)
def test_null_date_sentinels_become_none(sentinel) -> None:
    assert parse_time(sentinel) is None
    assert parse_date(sentinel) is None


def test_a_date_is_the_utc_day() -> None:
    assert parse_date("2025-01-31T23:30:00-02:00") == date(2025, 2, 1)


@pytest.mark.parametrize(
    ("value", "cents"),
    [(1200.0, 120000), (0.1 + 0.2, 30), (19.995, 2000), (2.675, 268), (-10.005, -1001), (7, 700), ("12.50", 1250),
     (1e-3, 0), (None, None), ("", None)],
)  # fmt: skip
def test_money_is_exact_cents_rounded_half_up(value, cents) -> None:
    assert to_cents(value) == cents


@given(st.decimals(min_value=-(10**9), max_value=10**9, places=2, allow_nan=False, allow_infinity=False))
def test_two_decimal_amounts_survive_the_double_on_the_wire(amount: Decimal) -> None:
    assert to_cents(float(amount)) == int(amount * 100)


@pytest.mark.parametrize("value", [True, "ten", [1]])
def test_an_unreadable_amount_is_refused(value) -> None:
    with pytest.raises(ValueError):
        to_cents(value)


def _invoice(**fields):
    raw = {"id": 1001, "total": 1200.0, "amountpaid": 200.0, "amountdue": 1000.0}
    raw.update(fields)
    return raw


def test_an_invoice_row_becomes_a_typed_record() -> None:
    raw = _invoice(
        invoicenumber="1001",
        thirdpartyinvoicenumber="INV-0420",
        client_id=42,
        client_name="Acme Ltd",
        contract_id=12,
        contract_ref="MSA-2025-001",
        invoice_date="2025-01-01T00:00:00",
        duedate="2025-01-31T00:00:00",
        posted=True,
        voided=False,
        currency="$",
        last_modified="2025-01-02T10:00:00",
    )
    invoice = parse_invoice(raw)
    assert (invoice.halo_id, invoice.invoice_number, invoice.third_party_number) == (1001, "1001", "INV-0420")
    assert (invoice.customer_halo_id, invoice.customer_name) == (42, "Acme Ltd")
    assert (invoice.agreement_halo_id, invoice.agreement_ref) == (12, "MSA-2025-001")
    assert (invoice.invoice_date, invoice.due_date) == (date(2025, 1, 1), date(2025, 1, 31))
    assert (invoice.total_cents, invoice.amount_paid_cents, invoice.amount_due_cents) == (120000, 20000, 100000)
    assert (invoice.posted, invoice.voided, invoice.currency) == (True, False, "$")
    assert invoice.last_modified == datetime(2025, 1, 2, 10, tzinfo=UTC)


def test_unknown_fields_are_ignored() -> None:
    assert parse_invoice(_invoice(brand_new_field={"x": 1}, lines=[{"id": 3}])).halo_id == 1001
    assert parse_customer({"id": 4, "name": "Acme", "customfields": [], "_warning": "x"}).name == "Acme"


def test_missing_amount_due_is_total_minus_paid() -> None:
    assert parse_invoice(_invoice(amountdue=None)).amount_due_cents == 100000


def test_foreign_ids_of_zero_or_minus_one_mean_none() -> None:
    invoice = parse_invoice(_invoice(client_id=0, contract_id=-1))
    assert (invoice.customer_halo_id, invoice.agreement_halo_id) == (None, None)


def test_invoice_last_modified_falls_back_to_creation() -> None:
    invoice = parse_invoice(_invoice(last_modified="1900-01-01T00:00:00", date_created="2025-02-02T00:00:00"))
    assert invoice.last_modified == datetime(2025, 2, 2, tzinfo=UTC)


def test_string_booleans_are_read() -> None:
    invoice = parse_invoice(_invoice(voided="true", posted="0"))
    assert (invoice.voided, invoice.posted) == (True, False)


def test_a_customer_row() -> None:
    customer = parse_customer(
        {"id": 42, "name": " Acme Ltd ", "inactive": False, "accountsemailaddress": "ap@acme.test",
         "clientcurrency": "GBP", "alastupdate": "2025-03-01T08:00:00", "datecreated": "2020-01-01T00:00:00"}
    )  # fmt: skip
    assert (customer.halo_id, customer.name, customer.billing_email, customer.currency) == (
        42, "Acme Ltd", "ap@acme.test", "GBP"
    )  # fmt: skip
    assert customer.last_modified == datetime(2025, 3, 1, 8, tzinfo=UTC)


def test_an_agreement_row_with_subtype_names_from_the_lookup() -> None:
    raw = {"id": 12, "ref": "MSA-1", "client_id": 42, "subtype": 3, "contracttype_name": "Managed",
           "start_date": "2025-01-01T00:00:00", "end_date": "0001-01-01T00:00:00", "expired": False}  # fmt: skip
    agreement = parse_agreement(raw, {3: "Backup"})
    assert (agreement.subtype_id, agreement.subtype_name, agreement.type_name) == (3, "Backup", "Managed")
    assert (agreement.start_date, agreement.end_date, agreement.active) == (date(2025, 1, 1), None, True)
    assert parse_agreement(raw).subtype_name == "Subtype 3"
    assert parse_agreement({**raw, "subtype": 0}).subtype_id is None


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("not a dict", "expected a JSON object"),
        ({"total": 1}, "id is missing"),
        ({"id": "abc", "total": 1}, "unreadable id"),
        ({"id": 0, "total": 1}, "positive"),
        ({"id": 2.5, "total": 1}, "whole number"),
        ({"id": 7}, "amount is missing"),
        ({"id": 7, "total": "a lot"}, "expected an amount"),
        ({"id": 7, "total": 1, "invoice_date": "31/01/2025"}, "31/01/2025"),
        ({"id": 7, "total": 1, "last_modified": 20250131}, "expected a timestamp"),
    ],
)
def test_a_malformed_invoice_is_a_record_error_with_a_reason(raw, reason) -> None:
    with pytest.raises(RecordError) as caught:
        parse_invoice(raw)
    assert reason in caught.value.reason
    assert caught.value.entity == "invoice"
    assert len(caught.value.excerpt) <= 300


def test_a_record_error_keeps_the_id_when_it_was_readable() -> None:
    with pytest.raises(RecordError) as caught:
        parse_invoice({"id": 7, "total": None})
    assert caught.value.halo_id == 7


def test_a_customer_without_a_name_is_refused() -> None:
    with pytest.raises(RecordError, match="no name"):
        parse_customer({"id": 3, "name": "  "})


def test_offsets_other_than_utc_are_converted() -> None:
    moment = parse_time("2025-06-01T09:00:00+05:30")
    assert moment == datetime(2025, 6, 1, 3, 30, tzinfo=UTC)
    assert moment.tzinfo == UTC

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
from tests.support.evidence import CREDIT_NOTE, EXPIRED_BUT_ACTIVE_CONTRACT


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


@pytest.mark.parametrize("text", ["2025-01-31T00:00:00+10:00", "2025-01-31T23:30:00-02:00", "2025-01-31T00:00:00Z",
                                  "2025-01-31T00:00:00", "2025-01-31"])
def test_a_date_only_field_is_the_literal_date_whatever_its_offset(text) -> None:
    """Issue 12: `2025-01-31T00:00:00+10:00` was stored as 2025-01-30 (converted to UTC first)."""
    assert parse_date(text) == date(2025, 1, 31)
    assert parse_invoice(_invoice(invoice_date=text, duedate=text)).due_date == date(2025, 1, 31)
    raw = {"id": 3, "start_date": text, "end_date": text}
    assert parse_agreement(raw).start_date == parse_agreement(raw).end_date == date(2025, 1, 31)


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
    assert (invoice.posted, invoice.voided, invoice.currency) == (True, False, None)  # a symbol is no currency code
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


def test_an_agreement_row_names_its_subtype_by_id_only() -> None:
    raw = {"id": 12, "ref": "MSA-1", "client_id": 42, "subtype": 3, "contracttype_name": "Managed",
           "start_date": "2025-01-01T00:00:00", "end_date": "0001-01-01T00:00:00", "expired": False}  # fmt: skip
    agreement = parse_agreement(raw)
    assert (agreement.subtype_id, agreement.type_name) == (3, "Managed")
    assert (agreement.start_date, agreement.end_date, agreement.active) == (date(2025, 1, 1), None, True)
    assert not hasattr(agreement, "subtype_name")  # names only from a verified lookup (core.halopsa.lookups)
    assert parse_agreement({**raw, "subtype": 0}).subtype_id is None
    assert parse_agreement({**raw, "subtype": -1}).subtype_id is None


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


# ---- issue 12: bounded records, statuses as HaloPSA has them, agreements, dates and money ---------------------------

INT64_MAX = 2**63 - 1


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"total": 1e20}, "too large"),
        ({"total": -1e20, "amountdue": -1e20}, "too large"),
        ({"amountdue": 10**17}, "too large"),
        ({"amountpaid": "1e999999"}, "too large"),
        ({"total": float("nan")}, "not a finite number"),
        ({"total": "NaN"}, "not a finite number"),
        ({"total": float("inf")}, "not a finite number"),
        ({"amountdue": "-Infinity"}, "not a finite number"),
        ({"id": 2**63}, "64 bits"),
        ({"id": "9223372036854775808"}, "64 bits"),
        ({"id": 1e20}, "64 bits"),
        ({"id": float("nan")}, "whole number"),
        ({"id": "INV-7"}, "whole number"),
        ({"client_id": 2**63}, "64 bits"),
        ({"contract_id": -(2**64)}, "64 bits"),
        ({"total": 92233720368547758.07, "amountpaid": -92233720368547758.07, "amountdue": None}, "too large"),
    ],
)
def test_a_value_beyond_64_bits_or_not_finite_rejects_that_record_with_its_reason(fields, reason) -> None:
    """Issue 12: a total of 1e20 (or an id of 2^63) overflowed the 64-bit column at upsert and rolled back the page,
    for ever; 1e999999 escaped as decimal.Overflow and crashed the run."""
    with pytest.raises(RecordError) as caught:
        parse_invoice(_invoice(**fields))
    assert reason in caught.value.reason


def test_the_64_bit_edges_themselves_are_kept() -> None:
    invoice = parse_invoice(_invoice(id=INT64_MAX, total=9e16, amountpaid=0, amountdue=None, client_id=INT64_MAX))
    assert (invoice.halo_id, invoice.customer_halo_id, invoice.amount_due_cents) == (INT64_MAX, INT64_MAX, 9 * 10**18)
    assert to_cents(INT64_MAX // 100) == INT64_MAX // 100 * 100
    assert to_cents(-(INT64_MAX // 100)) == -(INT64_MAX // 100) * 100
    with pytest.raises(ValueError, match="too large"):
        to_cents(INT64_MAX // 100 + 1)


@pytest.mark.parametrize("parse", [parse_customer, parse_agreement])
def test_customers_and_agreements_are_bounded_too(parse) -> None:
    with pytest.raises(RecordError, match="64 bits"):
        parse({"id": 2**63, "name": "Acme"})


def test_a_credit_note_is_a_credit_neither_paid_nor_unpaid() -> None:
    credit = parse_invoice(_invoice(total=-120.0, amountpaid=0.0, amountdue=-120.0, posted=True))
    assert credit.credit and (credit.total_cents, credit.amount_due_cents) == (-12000, -12000)
    assert not parse_invoice(_invoice(posted=True)).credit
    assert not parse_invoice(_invoice(total=100.0, amountpaid=150.0, amountdue=-50.0)).credit  # overpaid: paid


@pytest.mark.parametrize(
    ("fields", "posted"),
    [({"posted": True}, True), ({"posted": False}, False), ({"posted": False, "dateposted": "2025-01-02T09:00:00"},
                                                             False),
     ({"dateposted": "2025-01-02T09:00:00"}, True), ({"dateposted": "1900-01-01T00:00:00"}, False), ({}, False)],
)
def test_an_invoice_is_posted_only_when_halopsa_says_so(fields, posted) -> None:
    """Not posted (a draft, or awaiting approval) is never payable; without `posted` the posting date decides, and
    without either the invoice is not known to be posted."""
    assert parse_invoice(_invoice(**fields)).posted is posted


@pytest.mark.parametrize(
    ("flags", "active"),
    [({"active": True, "expired": False}, True), ({"active": True, "expired": True}, False),
     ({"active": False, "expired": False}, False), ({"expired": True}, False), ({"expired": False}, True),
     ({"active": "true", "expired": "true"}, False)],
)
def test_an_agreement_is_active_only_when_active_and_not_expired(flags, active) -> None:
    """Issue 12: `active` was read without `expired`, so expired agreements counted as active for auto-pay."""
    assert parse_agreement({"id": 12, **flags}).active is active


def test_the_currency_is_the_iso_code_never_the_symbol() -> None:
    """Issue 12: without `currency_code_name` the currency fell back to the symbol "$"."""
    codes = {1: "USD", 3: "GBP"}
    assert parse_invoice(_invoice(currency="$", currency_code=1, currency_code_name="USD")).currency == "USD"
    assert parse_invoice(_invoice(currency="£", currency_code=3), currency_of=codes.get).currency == "GBP"
    assert parse_invoice(_invoice(currency="$", currency_code=1, currency_code_name="US Dollar"),
                         currency_of=codes.get).currency == "USD"
    assert parse_invoice(_invoice(currency="$", currency_code=9), currency_of=codes.get).currency is None
    assert parse_invoice(_invoice(currency="$", currency_code=1)).currency is None
    assert parse_invoice(_invoice(currency_code_name="usd")).currency == "USD"
    assert parse_customer({"id": 4, "name": "Acme", "clientcurrency": "$"}).currency is None
    customer = parse_customer({"id": 4, "name": "Acme", "currencyisocode": "CAD", "clientcurrency": "CA$"})
    assert customer.currency == "CAD"


def test_a_currency_is_looked_up_only_when_the_row_has_no_iso_code() -> None:
    asked: list[int] = []

    def currency_of(code: int) -> str | None:
        asked.append(code)
        return "USD"

    parse_invoice(_invoice(currency_code=1, currency_code_name="USD"), currency_of=currency_of)
    parse_invoice(_invoice(currency_code=0), currency_of=currency_of)
    assert asked == []
    assert parse_invoice(_invoice(currency_code=2), currency_of=currency_of).currency == "USD" and asked == [2]


def test_payloads_shaped_as_the_public_evidence_has_them() -> None:
    agreement = parse_agreement(EXPIRED_BUT_ACTIVE_CONTRACT)
    assert (agreement.active, agreement.end_date) == (False, date(2025, 1, 31))
    credit = parse_invoice(CREDIT_NOTE, currency_of={4: "AUD"}.get)
    assert credit.credit and credit.posted and not credit.voided
    assert (credit.total_cents, credit.amount_due_cents, credit.currency) == (-24000, -24000, "AUD")
    assert (credit.invoice_date, credit.due_date) == (date(2025, 1, 31), date(2025, 1, 31))

"""The auto-pay classification of core.console.agreements for what HaloPSA has beyond paid and unpaid (issue 12):
credit notes, drafts, invoices deleted in HaloPSA, and agreements that expired or ended while still saying active."""

from dataclasses import replace
from datetime import date, timedelta

import pytest
from sqlalchemy import update

from core.access import Principal
from core.actions import autopay_rules
from core.console import agreements
from core.halopsa.records import parse_agreement
from core.store.tables import AGREEMENT_TABLE, INVOICE_TABLE, Role
from core.sync import streams
from tests.support.clock import NOW
from tests.support.factories import add_partner
from tests.support.invoice_book import BOOK, add_book, invoice

CS = Principal(Role.CS, "cs@example.com")
MANAGED = autopay_rules.RuleInput(1)  # Managed Services (tests.support.invoice_book.SUBTYPES)
YESTERDAY = NOW.date() - timedelta(days=1)


def _reasons(engine, partner_id) -> dict[str, str]:
    """Number -> why the Managed Services rule would not charge it ("eligible" when it would)."""
    preview = agreements.preview(engine, CS, partner_id, MANAGED, now=NOW)
    reasons = dict.fromkeys(preview.covered["number"], "eligible")
    return reasons | dict(zip(preview.excluded["number"], preview.excluded["reason"], strict=True))


def _set(engine, table, partner_id, halo_id, **values):
    with engine.begin() as conn:
        conn.execute(update(table).where(table.c.partner_id == partner_id, table.c.halo_id == halo_id).values(**values))


@pytest.fixture
def acme(engine, settings):
    partner_id = add_partner(engine, settings, now=NOW)
    add_book(engine, partner_id, [
        *BOOK,
        replace(invoice(201, due=date(2026, 10, 25), total=-4_000), credit=True),
        replace(invoice(202, due=date(2026, 10, 26), total=6_000), posted=False),
        invoice(204, due=date(2026, 10, 28), total=9_000),
    ])
    _set(engine, INVOICE_TABLE, partner_id, 204, **streams.DELETED_INVOICE)
    return partner_id


def test_credit_notes_drafts_and_deleted_invoices_are_never_charged_and_say_why(engine, acme):
    reasons = _reasons(engine, acme)
    preview = agreements.preview(engine, CS, acme, MANAGED, now=NOW)

    assert reasons["INV-101"] == "eligible"
    # not owed at all (104 paid, 105 voided, 201-204): counted with their reasons, last, never listed as excluded
    assert not {"INV-104", "INV-105", "INV-201", "INV-202", "INV-204"} & set(reasons)
    assert preview.settled_count == 5
    assert list(preview.reasons["reason"][-5:]) == ["already paid", "credit note", "deleted in HaloPSA",
                                                    "not posted in HaloPSA (draft or awaiting approval)", "voided"]


def test_credit_notes_drafts_and_deleted_invoices_are_not_unpaid_money(engine, settings, acme):
    plain = add_partner(engine, settings, name="Plain MSP", now=NOW)
    add_book(engine, plain)

    assert agreements.subtype_summary(engine, CS, acme, now=NOW).drop(columns="invoices").equals(
        agreements.subtype_summary(engine, CS, plain, now=NOW).drop(columns="invoices"))


def test_an_agreement_past_its_end_date_is_not_active_for_auto_pay(engine, acme):
    """Issue 12: active only when `active` and not `expired` and not past `end_date`; the end date is checked
    against today, so an agreement ending today still charges today."""
    _set(engine, AGREEMENT_TABLE, acme, 1, end_date=NOW.date())
    assert _reasons(engine, acme)["INV-101"] == "eligible"

    _set(engine, AGREEMENT_TABLE, acme, 1, end_date=YESTERDAY)
    reasons = _reasons(engine, acme)

    assert {reasons[n] for n in ("INV-101", "INV-102", "INV-103", "INV-107", "110")} == {"agreement ended"}
    assert reasons["INV-106"] == "agreement inactive"


def test_an_expired_agreement_that_still_says_active_is_not_active_for_auto_pay(engine, acme):
    """Issue 12: `active` was read without `expired`: HaloPSA's row as a tenant that never unticks Active sends it."""
    row = streams.agreement_row(parse_agreement({"id": 1, "ref": "AGR-1", "active": True, "expired": True,
                                                 "end_date": "0001-01-01T00:00:00"}))
    _set(engine, AGREEMENT_TABLE, acme, 1, active=row["active"], end_date=row["end_date"])

    assert _reasons(engine, acme)["INV-101"] == "agreement inactive"

from datetime import date, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from sqlalchemy import Date, literal, select

from core.access import Principal
from core.actions import autopay_rules
from core.console import agreements
from core.errors import AccessDenied, BadInput, NotFound
from core.store import sqldates
from core.store.tables import AUDIT_TABLE, Role
from tests.support import databases
from tests.support.clock import NOW
from tests.support.factories import add_partner
from tests.support.invoice_book import add_book, invoice

CS = Principal(Role.CS, "cs@example.com")
PM = Principal(Role.PM, "pm@example.com")
SQL = databases.expression_engine()  # the date arithmetic is checked on the engine the suite runs on
MANAGED_ID, BACKUP_ID = 1, 2  # the book's subtypes (tests.support.invoice_book.SUBTYPES)
MANAGED = autopay_rules.RuleInput(MANAGED_ID, trigger="on_due_date", max_amount=Decimal("2500.00"))


@pytest.fixture
def acme(engine, settings):
    partner_id = add_partner(engine, settings, now=NOW)
    add_book(engine, partner_id)
    return partner_id


def _audit(engine):
    with engine.connect() as conn:
        return conn.execute(select(AUDIT_TABLE).order_by(AUDIT_TABLE.c.id)).all()


@pytest.mark.parametrize(("rule", "field"), [
    (autopay_rules.RuleInput(0), "subtype_id"),
    (autopay_rules.RuleInput(-3), "subtype_id"),
    (autopay_rules.RuleInput(2**63), "subtype_id"),  # beyond a HaloPSA id (64 bits)
    (autopay_rules.RuleInput(True), "subtype_id"),  # type: ignore[arg-type]
    (autopay_rules.RuleInput("Backup"), "subtype_id"),  # type: ignore[arg-type]  # a name is no subtype any more
    (autopay_rules.RuleInput(BACKUP_ID, trigger="on_the_first_monday"), "trigger"),
    (autopay_rules.RuleInput(BACKUP_ID, trigger="days_after_due", days=-1), "days"),
    (autopay_rules.RuleInput(BACKUP_ID, trigger="days_after_due", days=366), "days"),
    (autopay_rules.RuleInput(BACKUP_ID, trigger="days_after_due", days=True), "days"),
    (autopay_rules.RuleInput(BACKUP_ID, trigger="on_due_date", days=3), "days"),
    (autopay_rules.RuleInput(BACKUP_ID, max_amount=Decimal("-1")), "max_amount"),
    (autopay_rules.RuleInput(BACKUP_ID, max_amount=Decimal("0")), "max_amount"),
    (autopay_rules.RuleInput(BACKUP_ID, max_amount=Decimal("10.005")), "max_amount"),
    (autopay_rules.RuleInput(BACKUP_ID, max_amount=Decimal("1e30")), "max_amount"),
])
def test_validate_names_the_field_to_fix(rule, field):
    with pytest.raises(BadInput) as caught:
        autopay_rules.validate(rule)
    assert caught.value.field == field


@pytest.mark.parametrize("rule", [
    autopay_rules.RuleInput(BACKUP_ID),
    autopay_rules.RuleInput(2**63 - 1, trigger="days_before_due", days=0),
    autopay_rules.RuleInput(BACKUP_ID, trigger="days_after_invoice", days=365, max_amount=Decimal("0.01")),
])
def test_validate_accepts_rules_at_the_edges(rule):
    autopay_rules.validate(rule)


@pytest.mark.parametrize(("text", "expected"), [("", None), ("  ", None), ("2500", Decimal("2500")),
                                                ("2,500.50", Decimal("2500.50"))])
def test_parse_amount_reads_what_people_type(text, expected):
    assert autopay_rules.parse_amount(text) == expected


@pytest.mark.parametrize("text", ["abc", "NaN", "Infinity", "12..5"])
def test_parse_amount_refuses_non_amounts_on_the_max_amount_field(text):
    with pytest.raises(BadInput) as caught:
        autopay_rules.parse_amount(text)
    assert caught.value.field == "max_amount"


@pytest.mark.parametrize(("trigger", "days", "text"), [
    ("on_due_date", 0, "on the due date"), ("days_before_due", 1, "1 day before the due date"),
    ("days_after_due", 3, "3 days after the due date"), ("days_after_invoice", 30, "30 days after the invoice date"),
])
def test_trigger_text_reads_as_a_sentence(trigger, days, text):
    assert autopay_rules.trigger_text(trigger, days) == text


@hypothesis_settings(max_examples=60, deadline=None)
@given(day=st.dates(min_value=date(2000, 1, 1), max_value=date(2090, 12, 31)), days=st.integers(-365, 365))
def test_add_days_in_sql_matches_python_across_month_and_year_ends(day, days):
    with SQL.connect() as conn:
        assert conn.scalar(select(sqldates.add_days(literal(day, Date), literal(days)))) == day + timedelta(days)


def test_save_rule_creates_the_rule_and_audits_actor_time_and_rule(engine, acme):
    rule_id = autopay_rules.save_rule(engine, CS, acme, MANAGED, now=NOW)

    [rule] = agreements.list_rules(engine, CS, acme)
    assert (rule.subtype_id, rule.subtype, rule.enabled, rule.trigger, rule.days, rule.max_amount,
            rule.created_by) == (1, "Managed Services (id 1)", True, "on_due_date", 0, Decimal("2500.00"),
                                 "cs@example.com")
    [event] = _audit(engine)
    assert (event.actor, event.at, event.partner_id, event.action) == ("cs@example.com", NOW, acme, "mapping_change")
    assert event.detail == ("Auto-pay rule for “Managed Services (id 1)” created: charge on the due date, up to "
                            "2500.00")
    assert rule_id > 0


def test_saving_again_updates_the_same_rule_and_audits_old_and_new(engine, acme):
    first = autopay_rules.save_rule(engine, CS, acme, MANAGED, now=NOW)
    partner = Principal(Role.PARTNER, "ap@acme.example", acme)
    later = NOW + timedelta(hours=2)
    second = autopay_rules.save_rule(engine, partner, acme, autopay_rules.RuleInput(
        MANAGED_ID, enabled=False, trigger="days_after_due", days=3), now=later)

    assert first == second
    [rule] = agreements.list_rules(engine, partner, acme)
    assert (rule.enabled, rule.trigger, rule.days, rule.max_amount, rule.updated_at) == (
        False, "days_after_due", 3, None, later)
    event = _audit(engine)[-1]
    assert (event.actor, event.at) == ("ap@acme.example", later)
    assert event.detail == ("Auto-pay rule for “Managed Services (id 1)” updated: charge 3 days after the due date "
                            "(disabled); was: charge on the due date, up to 2500.00")


def test_delete_rule_removes_it_and_audits(engine, acme):
    rule_id = autopay_rules.save_rule(engine, CS, acme, MANAGED, now=NOW)
    autopay_rules.delete_rule(engine, CS, acme, rule_id, now=NOW + timedelta(minutes=5))

    assert agreements.list_rules(engine, CS, acme) == []
    event = _audit(engine)[-1]
    assert (event.action, event.at, event.actor) == ("mapping_change", NOW + timedelta(minutes=5), "cs@example.com")
    assert event.detail.startswith("Auto-pay rule for “Managed Services (id 1)” deleted")
    with pytest.raises(NotFound):
        autopay_rules.delete_rule(engine, CS, acme, rule_id, now=NOW)


def test_a_rule_needs_a_subtype_the_partner_has_synced(engine, acme):
    with pytest.raises(BadInput) as caught:
        autopay_rules.save_rule(engine, CS, acme, autopay_rules.RuleInput(9), now=NOW)
    assert caught.value.field == "subtype_id" and "No synced agreement has subtype 9" in caught.value.message
    assert _audit(engine) == []


@pytest.mark.parametrize("call", [
    lambda engine, who, partner_id: autopay_rules.save_rule(engine, who, partner_id, MANAGED, now=NOW),
    lambda engine, who, partner_id: autopay_rules.delete_rule(engine, who, partner_id, 1, now=NOW),
    lambda engine, who, partner_id: autopay_rules.assign_subtype(engine, who, partner_id, 1, MANAGED_ID, now=NOW),
    lambda engine, who, partner_id: agreements.list_rules(engine, who, partner_id),
    lambda engine, who, partner_id: agreements.subtype_summary(engine, who, partner_id, now=NOW),
    lambda engine, who, partner_id: agreements.preview(engine, who, partner_id, MANAGED, now=NOW),
])
def test_only_cs_and_the_partners_own_users_reach_its_rules(engine, settings, acme, call):
    other = add_partner(engine, settings, name="Globex Partners", now=NOW)
    for outsider in (Principal(Role.PARTNER, "ap@globex.example", other), PM):
        with pytest.raises(AccessDenied):
            call(engine, outsider, acme)
    assert _audit(engine) == []


def test_preview_lists_covered_invoices_with_charge_dates_and_exclusions_with_reasons(engine, acme):
    result = agreements.preview(engine, CS, acme, MANAGED, now=NOW)

    covered = {row.number: row.charge_on for row in result.covered.itertuples()}
    # overdue invoices are charged on the next run (today); 110 shows its HaloPSA ID (no third-party number)
    assert covered == {"INV-101": date(2026, 11, 7), "INV-102": date(2026, 11, 2), "110": date(2026, 11, 2)}
    excluded = dict(zip(result.excluded["number"], result.excluded["reason"], strict=True))
    assert excluded == {"INV-103": "over maximum", "INV-104": "already paid", "INV-105": "voided",
                        "INV-106": "agreement inactive", "INV-107": "no due date"}
    assert "INV-108" not in excluded  # a Backup agreement: not this rule's subtype
    assert (result.covered_count, result.covered_cents) == (3, 10_000 + 50_000 + 15_000)
    assert (result.excluded_count, result.excluded_cents) == (5, 300_000 + 7_000 + 4_000)
    assert list(result.excluded["reason"][-2:]) == ["already paid", "voided"]  # what still matters is listed first
    assert result.covered["amount_due"].tolist() == [Decimal("500.00"), Decimal("150.00"), Decimal("100.00")]


@pytest.mark.parametrize(("rule", "charge_101"), [
    (autopay_rules.RuleInput(MANAGED_ID, trigger="days_before_due", days=3), date(2026, 11, 4)),
    (autopay_rules.RuleInput(MANAGED_ID, trigger="days_after_due", days=30), date(2026, 12, 7)),
    (autopay_rules.RuleInput(MANAGED_ID, trigger="days_after_invoice", days=40), date(2026, 11, 10)),
])
def test_preview_plans_the_charge_date_from_the_trigger(engine, acme, rule, charge_101):
    result = agreements.preview(engine, CS, acme, rule, now=NOW)

    charges = dict(zip(result.covered["number"], result.covered["charge_on"], strict=True))
    assert charges["INV-101"] == charge_101
    # by invoice date, an invoice without a due date is covered; by due date it is not
    assert ("INV-107" in charges) == (rule.trigger == "days_after_invoice")


def test_preview_of_a_disabled_rule_covers_nothing(engine, acme):
    result = agreements.preview(engine, CS, acme, autopay_rules.RuleInput(MANAGED_ID, enabled=False), now=NOW)

    assert result.covered.empty and result.covered_count == 0
    reasons = dict(zip(result.reasons["reason"], result.reasons["invoices"], strict=True))
    assert reasons["rule disabled"] == 5  # every unpaid invoice on an active agreement (101-103, 107, 110)


def test_preview_caps_the_rows_but_totals_every_invoice(engine, settings):
    partner_id = add_partner(engine, settings, now=NOW)
    add_book(engine, partner_id, [invoice(i, due=date(2026, 11, 20), total=1_000) for i in range(1, 31)])

    result = agreements.preview(engine, CS, partner_id, autopay_rules.RuleInput(MANAGED_ID), now=NOW, limit=10)

    assert len(result.covered) == 10
    assert (result.covered_count, result.covered_cents) == (30, 30_000)


def test_subtype_summary_counts_per_subtype_and_shows_the_mapped_rule(engine, acme):
    autopay_rules.save_rule(engine, CS, acme, autopay_rules.RuleInput(BACKUP_ID, trigger="days_after_due", days=1,
                                                                      enabled=False), now=NOW)

    summary = agreements.subtype_summary(engine, CS, acme, now=NOW).set_index("subtype")

    managed, backup = summary.loc["Managed Services (id 1)"], summary.loc["Backup (id 2)"]
    assert (managed.agreements, managed.invoices, managed.unpaid_invoices, managed.overdue_invoices) == (2, 8, 6, 4)
    assert managed.unpaid_amount == Decimal("3860.00")
    assert managed.rule == "not mapped"
    assert (backup.agreements, backup.invoices, backup.unpaid_amount) == (1, 1, Decimal("80.00"))
    assert backup.rule == "1 day after the due date (disabled)"
    assert list(summary.index) == ["Managed Services (id 1)", "Backup (id 2)"]  # unmapped first, then by unpaid
    assert list(summary["subtype_id"]) == [1, 2]

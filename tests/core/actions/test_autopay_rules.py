from dataclasses import replace
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
from core.settings import settings_from_mapping
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
    (autopay_rules.RuleInput(BACKUP_ID, overdue_opt_in="yes"), "enabled"),  # type: ignore[arg-type]
    (autopay_rules.RuleInput(BACKUP_ID, enabled=None), "enabled"),  # type: ignore[arg-type]
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
                            "2,500.00")
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
                            "(disabled); was: charge on the due date, up to 2,500.00")


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


def test_preview_lists_covered_invoices_with_charge_dates_and_unpaid_exclusions_with_reasons(engine, acme):
    result = agreements.preview(engine, CS, acme, MANAGED, now=NOW)

    covered = {row.number: row.charge_on for row in result.covered.itertuples()}
    # overdue invoices are charged on the next run (today); 110 (62 days overdue) is held back as long overdue
    assert covered == {"INV-101": date(2026, 11, 7), "INV-102": date(2026, 11, 2)}
    excluded = dict(zip(result.excluded["number"], result.excluded["reason"], strict=True))
    assert excluded == {"INV-103": "over maximum", "INV-106": "agreement inactive", "INV-107": "no due date",
                        "110": "long overdue (not opted in)"}  # 110 shows its HaloPSA ID (no third-party number)
    assert "INV-108" not in excluded  # a Backup agreement: not this rule's subtype
    assert result.covered_totals == [agreements.Total("USD", 2, 50_000 + 10_000)]
    assert result.excluded_totals == [agreements.Total("USD", 4, 300_000 + 7_000 + 4_000 + 15_000)]
    assert (result.covered_count, result.excluded_count, result.settled_count) == (2, 4, 2)
    assert list(result.reasons["reason"][-2:]) == ["already paid", "voided"]  # what still matters is listed first
    assert result.covered["amount_due"].tolist() == [Decimal("500.00"), Decimal("100.00")]
    assert set(result.covered["currency"]) == set(result.excluded["currency"]) == {"USD"}


def test_the_excluded_count_is_of_unpaid_invoices_only(engine, acme):
    """Issue 14: "excludes 717" counted 711 paid invoices; paid, voided, credit notes, drafts and deleted invoices
    are not owed, so the preview counts them apart and does not list them."""
    result = agreements.preview(engine, CS, acme, MANAGED, now=NOW)

    assert result.excluded_count == 4
    assert not {"INV-104", "INV-105"} & set(result.excluded["number"])
    assert result.summary() == ("Charges 2 unpaid invoices (600.00 USD due). Excludes 4 unpaid invoices (3,260.00 USD "
                                "due); 2 more invoices not owed (paid, voided, credit notes, drafts, deleted).")


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


def test_the_preview_of_a_disabled_rule_shows_what_enabling_it_charges(engine, acme):
    disabled = agreements.preview(engine, CS, acme, autopay_rules.RuleInput(MANAGED_ID, enabled=False), now=NOW)
    enabled = agreements.preview(engine, CS, acme, autopay_rules.RuleInput(MANAGED_ID), now=NOW)

    assert disabled.covered.equals(enabled.covered) and disabled.covered_totals == enabled.covered_totals
    assert "rule disabled" not in set(disabled.reasons["reason"])
    assert disabled.summary().startswith("Disabled: charges nothing until enabled; then it charges 2 unpaid invoices")
    assert enabled.summary().startswith("Charges 2 unpaid invoices (600.00 USD due).")


def test_preview_caps_the_rows_but_totals_every_invoice(engine, settings):
    partner_id = add_partner(engine, settings, now=NOW)
    add_book(engine, partner_id, [invoice(i, due=date(2026, 11, 20), total=1_000) for i in range(1, 31)])

    result = agreements.preview(engine, CS, partner_id, autopay_rules.RuleInput(MANAGED_ID), now=NOW, limit=10)

    assert len(result.covered) == 10
    assert result.covered_totals == [agreements.Total("USD", 30, 30_000)]


def test_subtype_summary_counts_per_subtype_and_shows_the_mapped_rule(engine, acme):
    autopay_rules.save_rule(engine, CS, acme, autopay_rules.RuleInput(BACKUP_ID, trigger="days_after_due", days=1,
                                                                      enabled=False), now=NOW)

    summary = agreements.subtype_summary(engine, CS, acme, now=NOW).set_index("subtype")

    managed, backup = summary.loc["Managed Services (id 1)"], summary.loc["Backup (id 2)"]
    assert (managed.agreements, managed.invoices, managed.unpaid_invoices, managed.overdue_invoices) == (2, 8, 6, 4)
    assert (managed.unpaid_amount, managed.currency) == (Decimal("3860.00"), "USD")
    assert managed.rule == "not mapped"
    assert (backup.agreements, backup.invoices, backup.unpaid_amount) == (1, 1, Decimal("80.00"))
    assert backup.rule == "1 day after the due date (disabled)"
    assert list(summary["subtype_id"]) == [1, 2]


def test_subtype_rows_keep_their_order_when_rules_and_money_change(engine, acme):
    """Issue 14: rows were sorted mapped-last, then by unpaid money, so saving a rule or a sync moved them."""
    before = list(agreements.subtype_summary(engine, CS, acme, now=NOW)["subtype_id"])
    autopay_rules.save_rule(engine, CS, acme, MANAGED, now=NOW)
    add_book(engine, acme, [invoice(120, agreement=2, due=date(2026, 11, 20), total=9_000_000)])

    assert list(agreements.subtype_summary(engine, CS, acme, now=NOW)["subtype_id"]) == before == [1, 2]


def test_a_subtype_s_money_is_one_row_per_currency_never_added_across(engine, settings):
    """Issue 14: USD, CAD and GBP invoices were added into one "mixed currencies" number."""
    partner_id = add_partner(engine, settings, now=NOW)
    add_book(engine, partner_id, [
        invoice(1, due=date(2026, 11, 20), total=60_000), invoice(2, due=date(2026, 10, 20), total=2_500),
        replace(invoice(3, due=date(2026, 11, 20), total=1_000_000), currency="CAD"),
        replace(invoice(4, due=date(2026, 11, 20), total=700), currency=None),
        replace(invoice(5, due=date(2026, 11, 20), total=300), currency=""),  # no code either: the same as none
    ])

    summary = agreements.subtype_summary(engine, CS, partner_id, now=NOW)
    result = agreements.preview(engine, CS, partner_id, autopay_rules.RuleInput(MANAGED_ID), now=NOW)

    managed = summary[summary["subtype_id"] == MANAGED_ID]
    assert list(zip(managed["currency"], managed["unpaid_invoices"], managed["unpaid_amount"], strict=True)) == [
        ("CAD", 1, Decimal("10000.00")), ("USD", 2, Decimal("625.00")), ("no currency", 2, Decimal("10.00"))]
    assert summary[summary["subtype_id"] == BACKUP_ID]["currency"].isna().tolist() == [True]  # no invoices at all
    assert result.covered_totals == [agreements.Total("CAD", 1, 1_000_000), agreements.Total("USD", 2, 62_500),
                                     agreements.Total(None, 2, 1_000)]
    assert result.summary().startswith("Charges 5 unpaid invoices (10,000.00 CAD · 625.00 USD · 10.00 (no currency)"
                                       " due).")


def test_before_enabling_the_preview_says_what_it_charges_today_and_in_the_next_seven_days(engine, settings):
    partner_id = add_partner(engine, settings, now=NOW)
    today = NOW.date()
    add_book(engine, partner_id, [
        invoice(1, due=today - timedelta(days=5), total=10_000), invoice(2, due=today, total=20_000),
        replace(invoice(3, due=today, total=123_456), currency="CAD"),
        invoice(4, due=today + timedelta(days=1), total=1_000), invoice(5, due=today + timedelta(days=7), total=2_000),
        invoice(6, due=today + timedelta(days=8), total=4_000),  # later than the outlook
    ])

    result = agreements.preview(engine, CS, partner_id, autopay_rules.RuleInput(MANAGED_ID, enabled=False), now=NOW)

    assert result.outlook_totals == {
        "today": [agreements.Total("CAD", 1, 123_456), agreements.Total("USD", 2, 30_000)],
        "in the next 7 days": [agreements.Total("USD", 2, 3_000)]}
    assert result.outlook_text() == ("Enabled, it charges today: 3 invoices (1,234.56 CAD · 300.00 USD due); in the "
                                     "next 7 days: 2 invoices (30.00 USD due).")
    assert result.outlook[["when", "currency", "invoices"]].values.tolist() == [
        ["today", "CAD", 1], ["today", "USD", 2], ["in the next 7 days", "USD", 2]]


@pytest.mark.parametrize(("rule", "overdue_days", "held_back"), [
    (autopay_rules.RuleInput(MANAGED_ID), 60, {"INV-103", "110"}),  # 93 and 62 days overdue today
    (autopay_rules.RuleInput(MANAGED_ID), 62, {"INV-103"}),  # 62 days is not more than 62
    (autopay_rules.RuleInput(MANAGED_ID), 61, {"INV-103", "110"}),
    (autopay_rules.RuleInput(MANAGED_ID, overdue_opt_in=True), 60, set()),
    # charged 61 days after the due date: every invoice would be more than 60 days overdue by then
    (autopay_rules.RuleInput(MANAGED_ID, trigger="days_after_due", days=61), 60, {"INV-101", "INV-102", "INV-103",
                                                                                   "110"}),
    (autopay_rules.RuleInput(MANAGED_ID, trigger="days_after_due", days=60), 60, {"INV-103", "110"}),
    (autopay_rules.RuleInput(MANAGED_ID, trigger="days_after_invoice", days=0), 60, {"INV-103", "110"}),
    # invoiced 2026-10-01: charged 2026-12-20, when 102 (due 10-20) is 61 days overdue and 101 (due 11-07) 43
    (autopay_rules.RuleInput(MANAGED_ID, trigger="days_after_invoice", days=80), 60, {"INV-102", "INV-103", "110"}),
    (autopay_rules.RuleInput(MANAGED_ID, trigger="days_after_invoice", days=100), 60, {"INV-101", "INV-102",
                                                                                      "INV-103", "110"}),
])
def test_an_invoice_long_overdue_on_its_charge_date_needs_the_rule_s_opt_in(engine, acme, rule, overdue_days,
                                                                            held_back):
    """Issue 14: every overdue invoice got "charge on <today>", one 552 days overdue among them, without a word."""
    result = agreements.preview(engine, CS, acme, rule, now=NOW, overdue_days=overdue_days)

    excluded = dict(zip(result.excluded["number"], result.excluded["reason"], strict=True))
    assert {number for number, why in excluded.items() if why == "long overdue (not opted in)"} == held_back
    assert sum(total.invoices for total in result.held_back) == len(held_back)
    assert not held_back & set(result.covered["number"])
    if rule.overdue_opt_in:
        charges = dict(zip(result.covered["number"], result.covered["charge_on"], strict=True))
        assert charges["110"] == charges["INV-103"] == NOW.date()  # opted in: charged on the next run


def test_the_held_back_invoices_are_said_with_what_opting_in_does(engine, acme):
    result = agreements.preview(engine, CS, acme, autopay_rules.RuleInput(MANAGED_ID), now=NOW, overdue_days=60)
    opted_in = agreements.preview(engine, CS, acme, autopay_rules.RuleInput(MANAGED_ID, overdue_opt_in=True),
                                  now=NOW, overdue_days=60)

    assert result.held_back_text() == ("Holds back 2 unpaid invoices (3,150.00 USD due) more than 60 days overdue on "
                                       "the day it would charge them. With the opt-in, the enabled rule charges them "
                                       "too, each on its charge date (today for a date already past).")
    assert opted_in.held_back_text() is None


def test_the_overdue_age_is_a_setting_every_screen_reads(engine, acme, monkeypatch):
    assert settings_from_mapping({}).autopay_overdue_days == 60
    assert settings_from_mapping({"HALO_AUTOPAY_OVERDUE_DAYS": "90"}).autopay_overdue_days == 90
    for bad in ("0", "abc", "-5", "3651", "1.5"):
        with pytest.raises(ValueError, match="HALO_AUTOPAY_OVERDUE_DAYS must be a whole number of days"):
            settings_from_mapping({"HALO_AUTOPAY_OVERDUE_DAYS": bad})
    monkeypatch.setenv("HALO_AUTOPAY_OVERDUE_DAYS", "62")  # no limit given: the configured one

    result = agreements.preview(engine, CS, acme, autopay_rules.RuleInput(MANAGED_ID), now=NOW)

    assert "110" in set(result.covered["number"]) and result.overdue_days == 62


def test_a_new_rule_starts_disabled_and_only_enabling_or_opting_in_starts_charging(engine, acme):
    assert autopay_rules.new_rule(BACKUP_ID) == autopay_rules.RuleInput(BACKUP_ID, enabled=False)
    rule_id = autopay_rules.save_rule(engine, CS, acme, autopay_rules.new_rule(MANAGED_ID), now=NOW)
    [saved] = agreements.list_rules(engine, CS, acme)
    assert (saved.id, saved.enabled, saved.overdue_opt_in) == (rule_id, False, False)
    enabled = autopay_rules.RuleInput(MANAGED_ID)

    assert autopay_rules.starts_charging(None, enabled)
    assert autopay_rules.starts_charging(saved, enabled)
    assert not autopay_rules.starts_charging(None, autopay_rules.new_rule(MANAGED_ID))
    autopay_rules.save_rule(engine, CS, acme, enabled, now=NOW)
    [saved] = agreements.list_rules(engine, CS, acme)
    assert not autopay_rules.starts_charging(saved, replace(enabled, days=0, max_amount=Decimal("10")))
    assert autopay_rules.starts_charging(saved, replace(enabled, overdue_opt_in=True))
    assert not autopay_rules.starts_charging(saved, replace(enabled, enabled=False, overdue_opt_in=True))


def test_the_opt_in_is_saved_described_and_audited(engine, acme):
    autopay_rules.save_rule(engine, CS, acme, autopay_rules.RuleInput(MANAGED_ID, overdue_opt_in=True), now=NOW)

    [rule] = agreements.list_rules(engine, CS, acme)
    assert rule.overdue_opt_in and rule.description == "charge on the due date, long-overdue invoices too"
    summary = agreements.subtype_summary(engine, CS, acme, now=NOW).set_index("subtype_id")
    assert summary.loc[MANAGED_ID, "rule"] == "on the due date, long-overdue invoices too"
    assert _audit(engine)[-1].detail.endswith("created: charge on the due date, long-overdue invoices too")
    assert autopay_rules.delete_question(rule) == (
        "Delete the auto-pay rule for Managed Services (id 1) (charge on the due date, long-overdue invoices too)? "
        "Deleting it is audited; its invoices stop being charged automatically.")

"""Agreement subtypes are their HaloPSA ids everywhere (issue 12): rules match by id only, so two subtypes with one
name never merge and a renamed subtype keeps its rule; every screen shows the id beside the name, and a name no
verified lookup (or person) gave says so."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import update

from core.access import Principal
from core.actions import autopay_rules, subtype_names
from core.console import adoption, agreements, exports, overview, subtypes
from core.console import invoices as invoices_screen
from core.errors import BadInput
from core.halopsa import records
from core.health import issues
from core.store import tables, upserts
from core.store.tables import RULE_TABLE, Role
from core.sync import streams
from core.sync import subtypes as kept
from tests.support.clock import NOW
from tests.support.factories import add_partner
from tests.support.invoice_book import add_book, invoice
from tests.support.subtype_names import name_subtypes

CS = Principal(Role.CS, "cs@example.com")
PM = Principal(Role.PM, "pm@example.com")


@pytest.fixture
def acme(engine, settings):
    """The invoice book (Managed Services = 1, Backup = 2), plus agreement 4 of subtype 4, which HaloPSA's lookup
    also calls "Backup", with one unpaid invoice (401)."""
    partner_id = add_partner(engine, settings, now=NOW)
    add_book(engine, partner_id, [invoice(101, due=date(2026, 11, 7), total=10_000),
                                  invoice(108, agreement=2, due=date(2026, 11, 8), total=8_000),
                                  invoice(401, agreement=4, due=date(2026, 11, 9), total=4_000)])
    agreement = records.Agreement(halo_id=4, ref="BK-4", customer_halo_id=1, subtype_id=4, type_name="Recurring",
                                  start_date=None, end_date=None, active=True, last_modified=NOW)
    with engine.begin() as conn:
        upserts.upsert_rows(conn, tables.AGREEMENT_TABLE, streams.AGREEMENT_FIELDS, [streams.agreement_row(agreement)],
                            partner_id=partner_id, now=NOW)
    name_subtypes(engine, partner_id, {1: "Managed Services", 2: "Backup", 4: "Backup"}, now=NOW)
    return partner_id


def _eligibility(engine, partner_id) -> dict[str, str]:
    rows = invoices_screen.page(engine, CS, partner_id, invoices_screen.Filters(), now=NOW).rows
    return dict(zip(rows["number"], rows["eligibility"], strict=True))


def _summary(engine, partner_id) -> dict[str, str]:
    summary = agreements.subtype_summary(engine, CS, partner_id, now=NOW)
    return dict(zip(summary["subtype"], summary["rule"], strict=True))


def test_two_subtypes_with_one_name_never_merge(engine, acme):
    autopay_rules.save_rule(engine, CS, acme, autopay_rules.RuleInput(2), now=NOW)

    assert _summary(engine, acme) == {"Managed Services (id 1)": "not mapped", "Backup (id 2)": "on the due date",
                                      "Backup (id 4)": "not mapped"}
    eligibility = _eligibility(engine, acme)
    assert eligibility["INV-108"].startswith("eligible") and eligibility["INV-401"] == "subtype not mapped"
    preview = agreements.preview(engine, CS, acme, autopay_rules.RuleInput(2), now=NOW)
    assert list(preview.covered["number"]) == ["INV-108"] and preview.excluded.empty
    options = invoices_screen.filter_options(engine, CS, acme).subtypes
    assert options == [(2, "Backup (id 2)"), (4, "Backup (id 4)"), (1, "Managed Services (id 1)")]
    assert list(invoices_screen.page(engine, CS, acme, invoices_screen.Filters(subtype=4), now=NOW).rows["number"]) \
        == ["INV-401"]


def test_a_renamed_subtype_keeps_its_rule(engine, acme):
    autopay_rules.save_rule(engine, CS, acme, autopay_rules.RuleInput(1), now=NOW)

    name_subtypes(engine, acme, {1: "Managed IT", 2: "Backup", 4: "Backup"}, now=NOW)  # renamed in HaloPSA

    [rule] = agreements.list_rules(engine, CS, acme)
    assert (rule.subtype_id, rule.subtype) == (1, "Managed IT (id 1)")
    assert _summary(engine, acme)["Managed IT (id 1)"] == "on the due date"
    assert _eligibility(engine, acme)["INV-101"].startswith("eligible")


def test_a_rule_whose_subtype_lost_its_name_shows_the_name_it_was_saved_with_as_not_verified(engine, acme):
    autopay_rules.save_rule(engine, CS, acme, autopay_rules.RuleInput(2), now=NOW)

    name_subtypes(engine, acme, {1: "Managed Services", 4: "Backup"}, now=NOW)  # the lookup no longer names 2

    assert [rule.subtype for rule in agreements.list_rules(engine, CS, acme)] == ["Backup (id 2, name not verified)"]
    assert _summary(engine, acme)["Subtype 2"] == "on the due date"


def test_a_rule_waiting_for_its_subtype_matches_nothing_and_the_overview_says_so(engine, settings, acme):
    rule_id = autopay_rules.save_rule(engine, CS, acme, autopay_rules.RuleInput(2), now=NOW)
    with engine.begin() as conn:  # as migration 0007 leaves a rule whose name named several subtype ids
        conn.execute(update(RULE_TABLE).where(RULE_TABLE.c.id == rule_id).values(subtype_id=None))

    [rule] = agreements.list_rules(engine, CS, acme)
    assert rule.needs_subtype and rule.subtype == "Backup (subtype to pick again)"
    assert set(_summary(engine, acme).values()) == {"not mapped"}
    assert _eligibility(engine, acme)["INV-108"] == "subtype not mapped"
    assert adoption.autopay_coverage(engine, PM)["covered_cents"].sum() == 0
    issues.evaluate(engine, now=NOW, settings=settings)
    found = overview.issues(engine, CS, now=NOW).set_index("type").loc["Subtype unmapped", "found"]
    assert "1 auto-pay rule wait for their subtype to be picked again" not in found
    assert found.endswith("1 auto-pay rule waits for its subtype to be picked again; it charges nothing meanwhile.")
    assert "none mapped to an auto-pay rule" in found  # a rule without its subtype maps nothing

    autopay_rules.assign_subtype(engine, CS, acme, rule_id, 2, now=NOW)

    assert _eligibility(engine, acme)["INV-108"].startswith("eligible")
    with pytest.raises(BadInput, match=r"Backup \(id 2\) has an auto-pay rule already"):
        autopay_rules.assign_subtype(engine, CS, acme, autopay_rules.save_rule(
            engine, CS, acme, autopay_rules.RuleInput(4), now=NOW), 2, now=NOW)


def test_names_that_are_not_verified_say_so_and_a_name_set_here_wins(engine, acme):
    with engine.begin() as conn:
        kept.unverify_names(conn, acme)
    subtype_names.set_name(engine, CS, acme, 4, "Offsite backup", now=NOW)

    assert set(_summary(engine, acme)) == {"Managed Services (id 1, name not verified)",
                                           "Backup (id 2, name not verified)", "Offsite backup (id 4)"}
    names = subtypes.subtype_names(engine, CS, acme).subtypes.set_index("subtype_id")
    assert names.loc[4, "from_lookup"] == "Backup (not verified)" and names.loc[4, "named_here"] == "Offsite backup"
    assert names.loc[4, "named_by"] == "cs@example.com, 2026-11-02 12:00 UTC"
    rows = {row["halo_id"]: row for row in exports.invoice_export_rows(engine, CS, acme)}
    assert (rows[401]["agreement_subtype_id"], rows[401]["agreement_subtype"]) == (4, "Offsite backup (id 4)")
    assert rows[101]["agreement_subtype"] == "Managed Services (id 1, name not verified)"


@pytest.mark.parametrize(("lookup", "says"), [
    (subtypes.LookupStatus(), "No lookup is set, so no subtype names come from HaloPSA"),
    (subtypes.LookupStatus(76, tables.SubtypeLookupState.UNCHECKED, "", None, "ap@acme.example"),
     "Lookup 76 (set by ap@acme.example) is not checked yet. The next sync that reads agreements checks it."),
    (subtypes.LookupStatus(76, tables.SubtypeLookupState.VERIFIED, "Lookup 76 names all 3 subtype ids.", NOW, "cs"),
     "Lookup 76 is verified (checked 2026-11-02 12:00 UTC): Lookup 76 names all 3 subtype ids."),
    (subtypes.LookupStatus(58, tables.SubtypeLookupState.UNVERIFIED, "Lookup 58 has no rows.", NOW, "cs"),
     "Lookup 58 is not verified (checked 2026-11-02 12:00 UTC): Lookup 58 has no rows. Check the lookup id"),
])
def test_the_lookup_and_its_last_check_read_in_plain_words(lookup, says):
    assert lookup.summary.startswith(says)

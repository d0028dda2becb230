import csv
import io
from dataclasses import replace
from datetime import date, timedelta
from decimal import Decimal

import pandas as pd
import pytest
from sqlalchemy import select, update

from core.access import Principal
from core.actions import autopay_rules
from core.console import agreements
from core.console import invoices as invoices_screen
from core.console.invoices import Filters
from core.errors import AccessDenied, BadInput, NotFound
from core.store.tables import AUDIT_TABLE, INVOICE_TABLE, IntegrationRole, NumberField, Role
from core.sync import streams
from tests.support.clock import NOW
from tests.support.factories import add_partner, add_run
from tests.support.invoice_book import BOOK, add_book, invoice

CS = Principal(Role.CS, "cs@example.com")
UNPAID = ["INV-101", "INV-102", "INV-103", "INV-106", "INV-107", "INV-108", "INV-109", "110"]


@pytest.fixture
def acme(engine, settings):
    partner_id = add_partner(engine, settings, now=NOW)
    add_book(engine, partner_id)
    return partner_id


_NO_FILTERS = Filters()
MANAGED_ID = 1  # tests.support.invoice_book.SUBTYPES


def _page(engine, partner_id, filters=_NO_FILTERS, **kwargs):
    return invoices_screen.page(engine, CS, partner_id, filters, now=NOW, **kwargs)


def _numbers(result):
    return sorted(result.rows["number"])


def _by_number(result, column):
    return dict(zip(result.rows["number"], result.rows[column], strict=True))


def test_only_unpaid_and_partially_paid_invoices_are_listed_with_totals(engine, acme):
    result = _page(engine, acme)

    assert _numbers(result) == sorted(UNPAID)
    assert (result.total_rows, result.page, result.pages) == (8, 1, 1)
    [usd] = result.totals
    assert (usd.currency, usd.invoices) == ("USD", 8)
    assert usd.total_cents == 10_000 + 50_000 + 300_000 + 7_000 + 4_000 + 8_000 + 1_500 + 20_000
    assert usd.due_cents == usd.total_cents - 5_000  # 110 is partially paid
    assert _by_number(result, "amount_due")["110"] == Decimal("150.00")


@pytest.mark.parametrize(("days_late", "bucket"), [
    (-5, "current"), (0, "current"), (1, "1-30"), (30, "1-30"), (31, "31-60"), (60, "31-60"), (61, "61-90"),
    (90, "61-90"), (91, "90+"), (400, "90+"),
])
def test_aging_bucket_edges_agree_between_the_column_and_the_filter(engine, settings, days_late, bucket):
    partner_id = add_partner(engine, settings, now=NOW)
    add_book(engine, partner_id, [invoice(1, due=NOW.date() - timedelta(days=days_late), total=100),
                                  invoice(2, due=date(1999, 1, 1), total=100)])

    listed = _page(engine, partner_id, Filters(sort="number"))
    assert listed.rows["aging"][0] == bucket
    assert listed.rows["days_overdue"][0] == max(days_late, 0)
    assert "INV-1" in set(_page(engine, partner_id, Filters(aging=bucket)).rows["number"])
    assert _page(engine, partner_id, Filters(aging=bucket)).total_rows == (2 if bucket == "90+" else 1)


def test_paging_returns_one_page_while_totals_cover_every_filtered_row(engine, acme):
    everything = _page(engine, acme)
    pages = [_page(engine, acme, page=n, page_size=3) for n in (1, 2, 3)]

    assert [len(p.rows) for p in pages] == [3, 3, 2]
    assert sorted(n for p in pages for n in p.rows["number"]) == sorted(UNPAID)
    assert all((p.total_rows, p.pages, p.totals) == (8, 3, everything.totals) for p in pages)
    assert _page(engine, acme, page=99, page_size=3).page == 3  # clamped to the last page
    assert list(pages[0].rows.columns) == invoices_screen.COLUMNS


def test_days_overdue_and_aging_buckets_are_computed_from_now(engine, acme):
    result = _page(engine, acme)

    days = _by_number(result, "days_overdue")
    assert (days["INV-101"], days["INV-102"], days["INV-103"], days["110"]) == (0, 13, 93, 62)
    assert days["INV-107"] is pd.NA  # no due date: not overdue, and not shown as 0
    assert _by_number(result, "aging") == {
        "INV-101": "current", "INV-107": "current", "INV-102": "1-30", "INV-106": "1-30", "INV-108": "31-60",
        "INV-109": "31-60", "110": "61-90", "INV-103": "90+"}
    aging = result.aging.set_index("bucket")
    assert list(aging.index) == list(invoices_screen.AGING_BUCKETS)
    assert aging.loc["90+", "amount_due"] == Decimal("3000.00")
    assert aging["invoices"].sum() == result.total_rows
    assert set(aging["currency"]) == {"USD"}
    assert sum(aging["amount_due"]) * 100 == result.totals[0].due_cents


@pytest.mark.parametrize(("filters", "expected"), [
    (Filters(search="inv-10"), ["INV-101", "INV-102", "INV-103", "INV-106", "INV-107", "INV-108", "INV-109"]),
    (Filters(search="GAMMA"), ["INV-107"]),
    (Filters(search="bk-2"), ["INV-108"]),
    (Filters(search="%"), []),  # a wildcard is searched for literally
    (Filters(customer_halo_id=2), ["INV-109"]),
    (Filters(subtype=2), ["INV-108"]),
    (Filters(aging="31-60"), ["INV-108", "INV-109"]),
    (Filters(eligibility="eligible"), ["INV-101", "INV-102"]),
    (Filters(eligibility="long overdue (not opted in)"), ["110"]),  # 62 days overdue: beyond 60 without the opt-in
    (Filters(eligibility="over maximum"), ["INV-103"]),
    (Filters(subtype=MANAGED_ID, aging="1-30"), ["INV-102", "INV-106"]),
])
def test_filters_narrow_rows_and_totals(engine, acme, filters, expected):
    autopay_rules.save_rule(engine, CS, acme, autopay_rules.RuleInput(MANAGED_ID, max_amount=Decimal("2500")),
                            now=NOW)

    result = _page(engine, acme, filters)

    assert _numbers(result) == sorted(expected)
    assert result.total_rows == len(expected)
    assert result.aging["invoices"].sum() == len(expected)


def test_eligibility_says_why_and_when_per_invoice(engine, acme):
    autopay_rules.save_rule(engine, CS, acme, autopay_rules.RuleInput(MANAGED_ID, max_amount=Decimal("2500")),
                            now=NOW)

    assert _by_number(_page(engine, acme), "eligibility") == {
        "INV-101": "eligible (rule: on the due date, charge on 2026-11-07)",
        "INV-102": "eligible (rule: on the due date, charge on 2026-11-02)",
        "110": "long overdue (not opted in)",
        "INV-103": "over maximum", "INV-106": "agreement inactive", "INV-107": "no due date",
        "INV-108": "subtype not mapped", "INV-109": "no agreement",
    }
    autopay_rules.save_rule(engine, CS, acme, autopay_rules.RuleInput(MANAGED_ID, enabled=False,
                                                                      trigger="days_after_due", days=1), now=NOW)
    assert _by_number(_page(engine, acme), "eligibility")["INV-101"] == "rule disabled"


def test_eligibility_agrees_with_the_rule_preview(engine, acme):
    rule = autopay_rules.RuleInput(MANAGED_ID, trigger="days_before_due", days=5, max_amount=Decimal("400"))
    autopay_rules.save_rule(engine, CS, acme, rule, now=NOW)

    preview = agreements.preview(engine, CS, acme, rule, now=NOW)
    eligible = _page(engine, acme, Filters(eligibility="eligible"))

    assert _numbers(eligible) == sorted(preview.covered["number"])
    assert [agreements.Total(t.currency, t.invoices, t.due_cents) for t in eligible.totals] == preview.covered_totals


def test_the_fallback_to_the_halopsa_id_is_marked(engine, acme):
    fallback = _by_number(_page(engine, acme), "number_is_fallback")

    assert fallback["110"] is True
    assert not any(flag for number, flag in fallback.items() if number != "110")


@pytest.mark.parametrize(("sort", "descending", "first"), [
    ("amount_due", True, "INV-103"), ("due_date", False, "INV-103"), ("due_date", True, "INV-101"),
    ("days_overdue", True, "INV-103"), ("days_overdue", False, "INV-101"), ("customer", False, "INV-109"),
    ("number", True, "INV-109"),
])
def test_sorting_happens_in_sql_across_pages(engine, acme, sort, descending, first):
    result = _page(engine, acme, Filters(sort=sort, descending=descending), page_size=1)

    assert list(result.rows["number"]) == [first]


@pytest.mark.parametrize(("filters", "field"), [
    (Filters(aging="1-1000"), "aging"), (Filters(eligibility="maybe"), "eligibility"),
    (Filters(sort="id; drop"), "sort"),
])
def test_unknown_filter_values_are_refused_by_field(engine, acme, filters, field):
    with pytest.raises(BadInput) as caught:
        _page(engine, acme, filters)
    assert caught.value.field == field


def test_another_partners_invoices_never_appear(engine, settings, acme):
    globex = add_partner(engine, settings, name="Globex Partners", now=NOW)
    add_book(engine, globex, [invoice(101, due=date(2026, 10, 1), total=99_900, number="GLOBEX-1")])

    assert "GLOBEX-1" not in set(_page(engine, acme).rows["number"])
    assert _numbers(_page(engine, globex)) == ["GLOBEX-1"]


@pytest.mark.parametrize("call", [
    lambda engine, who, pid: invoices_screen.page(engine, who, pid, Filters(), now=NOW),
    lambda engine, who, pid: invoices_screen.filter_options(engine, who, pid),
    lambda engine, who, pid: invoices_screen.export_csv(engine, who, pid, Filters(), now=NOW),
])
def test_pm_and_other_partners_get_no_invoice_rows(engine, settings, acme, call):
    globex = add_partner(engine, settings, name="Globex Partners", now=NOW)
    for outsider in (Principal(Role.PARTNER, "ap@globex.example", globex), Principal(Role.PM, "pm@example.com")):
        with pytest.raises(AccessDenied):
            call(engine, outsider, acme)
    assert call(engine, Principal(Role.PARTNER, "ap@acme.example", acme), acme) is not None


def test_filter_options_list_the_partners_customers_and_subtypes(engine, acme):
    options = invoices_screen.filter_options(engine, CS, acme)

    assert dict(options.customers) == {1: "Alpha Co", 2: '=HYPERLINK("http://evil.example")', 3: "Gamma Ltd"}
    assert options.subtypes == [(2, "Backup (id 2)"), (1, "Managed Services (id 1)")]


def test_csv_export_has_every_filtered_row_neutralises_formulas_and_is_audited(engine, acme):
    actor = Principal(Role.PARTNER, "ap@acme.example", acme)

    export = invoices_screen.export_csv(engine, actor, acme, Filters(aging="31-60", sort="number"), now=NOW)

    rows = list(csv.DictReader(io.StringIO(export.text)))
    assert export.rows == 2
    assert [row["number"] for row in rows] == ["INV-108", "INV-109"]
    assert rows[1]["customer"] == "'=HYPERLINK(\"http://evil.example\")"
    assert (rows[0]["amount_due"], rows[0]["auto_pay"], rows[0]["days_overdue"]) == ("80.00", "subtype not mapped",
                                                                                     "48")
    with engine.connect() as conn:
        [event] = conn.execute(select(AUDIT_TABLE)).all()
    assert (event.action, event.actor, event.partner_id, event.at) == ("export", "ap@acme.example", acme, NOW)
    assert "2 rows" in event.detail and "aging “31-60”" in event.detail


def test_csv_export_is_not_limited_to_one_page(engine, settings):
    partner_id = add_partner(engine, settings, now=NOW)
    add_book(engine, partner_id, [invoice(i, due=date(2026, 11, 20), total=1_000) for i in range(1, 121)])

    export = invoices_screen.export_csv(engine, CS, partner_id, Filters(), now=NOW)

    assert export.rows == 120
    assert len(export.text.strip().splitlines()) == 121


def test_csv_export_of_a_partner_that_does_not_exist_is_refused_with_nothing_written(engine):
    with pytest.raises(NotFound, match="no longer exists"):
        invoices_screen.export_csv(engine, CS, 9999, Filters(), now=NOW)
    with engine.connect() as conn:
        assert conn.execute(select(AUDIT_TABLE)).all() == []


# ---- issue 12: credit notes, drafts and deleted invoices are never unpaid ------------------------------------------

def _with_statuses(engine, partner_id):
    """The book, plus a credit note, a draft, a draft that was voided and an invoice deleted in HaloPSA, each on the
    Managed Services agreement (an "on the due date" rule charges its unpaid invoices)."""
    extra = [
        replace(invoice(201, due=date(2026, 10, 25), total=-4_000), credit=True),
        replace(invoice(202, due=date(2026, 10, 26), total=6_000), posted=False),
        replace(invoice(203, due=date(2026, 10, 27), total=6_000, voided=True), posted=False),
        invoice(204, due=date(2026, 10, 28), total=9_000),
    ]
    add_book(engine, partner_id, [*BOOK, *extra])
    with engine.begin() as conn:
        conn.execute(update(INVOICE_TABLE).where(INVOICE_TABLE.c.partner_id == partner_id,
                                                 INVOICE_TABLE.c.halo_id == 204).values(**streams.DELETED_INVOICE))
    autopay_rules.save_rule(engine, CS, partner_id, autopay_rules.RuleInput(MANAGED_ID), now=NOW)


def test_credit_notes_drafts_and_deleted_invoices_are_not_unpaid(engine, settings):
    """Issue 12: a credit note was stored as paid and a draft showed as unpaid and eligible for auto-pay."""
    partner_id = add_partner(engine, settings, now=NOW)
    _with_statuses(engine, partner_id)

    result = _page(engine, partner_id)

    assert _numbers(result) == sorted(UNPAID)
    assert result.total_rows == 8


def test_the_credits_filter_lists_credit_notes_never_eligible(engine, settings):
    partner_id = add_partner(engine, settings, now=NOW)
    _with_statuses(engine, partner_id)

    credits = _page(engine, partner_id, Filters(view="credits"))

    assert _numbers(credits) == ["INV-201"]
    assert (credits.total_rows, credits.totals[0].due_cents, credits.view) == (1, -4_000, "credits")
    assert credits.tiles()[0].label == "Credit notes" and credits.tiles()[1].value == "-40.00"
    assert _by_number(credits, "eligibility") == {"INV-201": "credit note"}
    assert _page(engine, partner_id, Filters(view="credits", eligibility="eligible")).total_rows == 0


def test_a_draft_is_not_payable_and_the_table_says_why(engine, settings):
    partner_id = add_partner(engine, settings, now=NOW)
    _with_statuses(engine, partner_id)

    drafts = _page(engine, partner_id, Filters(view="not_posted"))

    assert _numbers(drafts) == ["INV-202"]  # the voided draft is voided
    assert _by_number(drafts, "eligibility") == {"INV-202": "not posted in HaloPSA (draft or awaiting approval)"}
    assert "INV-202" not in set(_page(engine, partner_id, Filters(eligibility="eligible")).rows["number"])


def test_an_unknown_view_is_refused_by_field(engine, acme):
    with pytest.raises(BadInput) as caught:
        _page(engine, acme, Filters(view="everything"))
    assert caught.value.field == "view"
    assert Filters(view="credits").describe() == "show “Credit notes”"


# ---- issue 14: money per currency, the number marker, search by HaloPSA ID, why a partner has no invoices ---------

def _in(currency, record):
    return replace(record, currency=currency)


MIXED = [  # due 2026-10-20 is 13 days overdue (1-30); 2026-08-01 is 93 (90+); 2026-11-20 is not yet due
    _in("USD", invoice(1, due=date(2026, 10, 20), total=62_500_000)),
    _in("USD", invoice(2, due=date(2026, 8, 1), total=50_000, paid=10_000)),
    _in("USD", invoice(3, due=date(2026, 11, 20), total=1_000)),
    _in("CAD", invoice(4, due=date(2026, 10, 20), total=2_000_000)),
    _in("GBP", invoice(5, due=date(2026, 11, 20), total=300_000)),
    _in(None, invoice(6, due=date(2026, 10, 20), total=900)),
]


def test_amounts_are_totalled_per_currency_never_across_currencies(engine, settings):
    """Issue 14: Northwind's USD, CAD and GBP invoices were added into one "Amount due (mixed currencies)"."""
    partner_id = add_partner(engine, settings, now=NOW)
    add_book(engine, partner_id, MIXED)

    result = _page(engine, partner_id)

    assert result.total_rows == 6
    assert [(t.currency, t.invoices, t.total_cents, t.due_cents) for t in result.totals] == [
        ("USD", 3, 62_551_000, 62_541_000), ("CAD", 1, 2_000_000, 2_000_000), ("GBP", 1, 300_000, 300_000),
        (None, 1, 900, 900)]
    assert [t.label for t in result.totals] == ["USD", "CAD", "GBP", "no currency"]
    assert set(result.rows["currency"]) == {"USD", "CAD", "GBP", "no currency"}


def test_the_aging_is_split_by_currency_with_every_bucket_for_each(engine, settings):
    partner_id = add_partner(engine, settings, now=NOW)
    add_book(engine, partner_id, MIXED)

    aging = _page(engine, partner_id).aging

    assert list(aging.columns) == ["currency", "bucket", "invoices", "amount_due"]
    assert list(dict.fromkeys(aging["currency"])) == ["USD", "CAD", "GBP", "no currency"]
    assert len(aging) == 4 * len(invoices_screen.AGING_BUCKETS)
    due = {(row.currency, row.bucket): row.amount_due for row in aging.itertuples()}
    assert due[("USD", "1-30")] == Decimal("625000.00") and due[("USD", "90+")] == Decimal("400.00")
    assert due[("CAD", "1-30")] == Decimal("20000.00") and due[("CAD", "90+")] == 0
    assert due[("no currency", "1-30")] == Decimal("9.00")


def test_tiles_give_the_count_and_one_amount_per_currency_thousands_separated(engine, settings):
    partner_id = add_partner(engine, settings, now=NOW)
    add_book(engine, partner_id, MIXED)

    tiles = _page(engine, partner_id).tiles()

    assert [(tile.label, tile.value) for tile in tiles] == [
        ("Unpaid invoices", "6"), ("Amount due (USD)", "625,410.00"), ("Amount due (CAD)", "20,000.00"),
        ("Amount due (GBP)", "3,000.00"), ("Amount due (no currency)", "9.00")]
    assert tiles[1].help == "3 invoices, invoiced 625,510.00 USD before payments."
    assert [(t.label, t.value) for t in _page(engine, partner_id, Filters(search="nothing")).tiles()] == [
        ("Unpaid invoices", "0")]


def test_the_number_says_when_it_is_the_halopsa_id(engine, acme):
    """Issue 14: the fallback was a pale checkbox headed "HaloPSA ID", scrolled off-screen."""
    shown = _by_number(_page(engine, acme), "number_shown")

    assert shown["110"] == "110 (HaloPSA ID: no third-party number)"
    assert shown["INV-101"] == "INV-101"
    assert _by_number(_page(engine, acme), "halo_id")["INV-101"] == 101


@pytest.mark.parametrize("number_field", list(NumberField))
def test_search_finds_an_invoice_by_its_halopsa_id_whatever_the_number_field(engine, settings, number_field):
    """Issue 14: with the Third Party Invoice Number shown, searching the HaloPSA ID found nothing."""
    partner_id = add_partner(engine, settings, now=NOW, number_field=number_field)
    add_book(engine, partner_id, [invoice(1043, due=date(2026, 10, 20), total=100, number="NW-7"),
                                  invoice(2043, due=date(2026, 10, 20), total=100, number="NW-8")],
             number_field=number_field)

    found = _page(engine, partner_id, Filters(search=" 1043 "))

    assert list(found.rows["halo_id"]) == [1043]
    assert _page(engine, partner_id, Filters(search="99999999999999999999999")).total_rows == 0  # no overflow


def test_a_secondary_partner_is_told_why_it_has_no_invoices(engine, settings):
    """Issue 14: a secondary-integration partner saw an empty chart and no reason."""
    partner_id = add_partner(engine, settings, name="Fabrikam", now=NOW, role=IntegrationRole.SECONDARY)

    note = invoices_screen.source_note(engine, CS, partner_id)

    assert note is not None and not note.show_invoices
    assert note.message.startswith("HaloPSA is the secondary integration for Fabrikam: its invoices come from the "
                                   "primary integration")


def test_a_secondary_partner_with_invoices_from_before_sees_them_marked_out_of_date(engine, settings):
    partner_id = add_partner(engine, settings, name="Fabrikam", now=NOW, role=IntegrationRole.SECONDARY)
    add_book(engine, partner_id, MIXED)

    note = invoices_screen.source_note(engine, CS, partner_id)

    assert note is not None and note.show_invoices
    assert "The 6 invoices listed were synced while HaloPSA was the primary integration" in note.message


def test_a_primary_partner_before_its_first_sync_is_told_so_and_after_it_nothing(engine, settings, acme):
    fresh = add_partner(engine, settings, name="Fresh", now=NOW)

    note = invoices_screen.source_note(engine, CS, fresh)
    assert note is not None and not note.show_invoices and "first sync" in note.message
    add_run(engine, settings, acme, at=NOW - timedelta(hours=1))
    assert invoices_screen.source_note(engine, CS, acme) is None
    with pytest.raises(AccessDenied):
        invoices_screen.source_note(engine, Principal(Role.PM, "pm@example.com"), acme)

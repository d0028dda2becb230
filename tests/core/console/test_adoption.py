import csv
import io
import math
from datetime import date, timedelta

import pytest
from sqlalchemy import select, update

from core.access import Principal
from core.actions import fetches
from core.console import adoption, exports
from core.errors import AccessDenied, BadInput, CooldownActive, Refused
from core.store import run_days
from core.store.tables import AUDIT_TABLE, JOB_TABLE, IntegrationRole, JobState, Role, RunKind, RunStatus
from core.sync import cooldowns, runs
from tests.support.clock import NOW
from tests.support.factories import add_agreements, add_invoices, add_partner, add_rule, add_run

CS = Principal(role=Role.CS, user="cs@example.com")
PERIOD = adoption.Period.ending(NOW.date(), 30)
PM = Principal(role=Role.PM, user="pm@example.com")
T0 = NOW - timedelta(days=10)
HOUR = timedelta(hours=1)
INVOICE_COLUMNS = {"halo_id", "invoice_number", "third_party_number", "display_number", "customer", "customer_name",
                   "customer_halo_id", "due_date", "invoice_date", "total_cents", "amount_due_cents", "client_id",
                   "client_secret", "client_secret_encrypted"}


@pytest.fixture(autouse=True, params=["runs", "half rolled up", "rolled up"])
def rolled_up(request, monkeypatch, engine):
    """Every test reads its runs three ways, and must see the same: from the runs alone (no scheduler has rolled any
    up), with those finished before NOW - 5 days rolled up (the rest read from the runs), and with all rolled up."""
    if request.param == "runs":
        return
    upto = NOW - timedelta(days=5) if request.param == "half rolled up" else NOW + timedelta(days=60)
    totals = run_days.totals

    def rolled_then_read(*args, **kwargs):
        run_days.advance(engine, upto + run_days.MARGIN)
        return totals(*args, **kwargs)

    monkeypatch.setattr(run_days, "totals", rolled_then_read)


@pytest.fixture
def activation(engine, settings):
    """Alpha goes all the way; Beta maps a subtype with a disabled rule; Gamma never syncs; Delta is secondary."""
    alpha = add_partner(engine, settings, name="Alpha", now=T0)
    beta = add_partner(engine, settings, name="Beta", now=T0)
    add_partner(engine, settings, name="Gamma", now=T0)
    delta = add_partner(engine, settings, name="Delta", now=T0, role=IntegrationRole.SECONDARY)
    add_run(engine, settings, alpha, at=T0 + 2 * HOUR, kind=RunKind.BACKFILL)     # finishes at +2 h 1 min
    add_run(engine, settings, beta, at=T0 + HOUR, status=RunStatus.FAILED)         # a failure is not a first sync
    add_run(engine, settings, beta, at=T0 + 4 * HOUR, kind=RunKind.BACKFILL)      # finishes at +4 h 1 min
    add_run(engine, settings, delta, at=T0 + HOUR, kind=RunKind.BACKFILL)
    add_rule(engine, alpha, 1, at=T0 + timedelta(days=1))
    add_rule(engine, beta, 1, at=T0 + timedelta(days=3), enabled=False)
    return {"alpha": alpha, "beta": beta}


def test_funnel_counts_partners_per_stage_and_who_stopped_there(engine, activation):
    funnel = adoption.funnel(engine, PM, PERIOD).set_index("stage")
    assert funnel["partners"].to_dict() == {"Connected": 3, "First successful sync": 2, "Subtype mapped": 2,
                                            "Auto-pay rule enabled": 1}
    assert funnel["stopped_here"].to_dict() == {"Connected": "Gamma", "First successful sync": "",
                                                "Subtype mapped": "Beta", "Auto-pay rule enabled": ""}
    assert funnel.loc["Subtype mapped", "share_of_connected"] == pytest.approx(2 / 3)


def test_a_check_of_the_tenant_or_a_reconciliation_is_no_first_sync(engine, settings):
    partner_id = add_partner(engine, settings, name="Checked", now=T0)
    add_run(engine, settings, partner_id, at=T0 + HOUR, kind=RunKind.PROBE, trigger="request")
    add_run(engine, settings, partner_id, at=T0 + 2 * HOUR, kind=RunKind.RECONCILE, trigger="request")
    funnel = adoption.funnel(engine, PM, PERIOD).set_index("stage")
    assert funnel["partners"].to_dict()["First successful sync"] == 0
    [row] = adoption.partner_breakdown(engine, CS, PERIOD).to_dict("records")
    assert row["to_first_sync"] == adoption.NOT_REACHED


def test_funnel_medians_are_taken_between_consecutive_stages(engine, activation):
    funnel = adoption.funnel(engine, CS, PERIOD).set_index("stage")
    hours = funnel["median_hours_from_previous"]
    assert math.isnan(hours["Connected"])
    assert hours["First successful sync"] == pytest.approx((2 + 4) / 2 + 1 / 60)       # 2 h 1 min and 4 h 1 min
    assert hours["Subtype mapped"] == pytest.approx(((24 - 2) + (72 - 4)) / 2 - 1 / 60)
    assert hours["Auto-pay rule enabled"] == 0
    assert funnel.loc["First successful sync", "median_from_previous"] == "3 h 1 min"


def test_success_rate_per_day_counts_finished_runs_only(engine, settings):
    partner_id = add_partner(engine, settings, now=T0)
    yesterday = NOW - timedelta(days=1)
    for offset, status in enumerate([RunStatus.SUCCEEDED, RunStatus.SUCCEEDED, RunStatus.PARTIAL, RunStatus.FAILED]):
        add_run(engine, settings, partner_id, at=yesterday + offset * HOUR, status=status)
    add_run(engine, settings, partner_id, at=NOW - 2 * HOUR, status=RunStatus.FAILED)
    add_run(engine, settings, partner_id, at=NOW - HOUR, status=RunStatus.RATE_LIMITED)
    other = add_partner(engine, settings, name="Still running", now=T0)
    runs.start_run(engine, partner_id=other, partner_name="Still running", kind=RunKind.SCHEDULED, trigger="schedule",
                   actor="tests", now=NOW - HOUR, settings=settings)
    rate = adoption.success_rate_per_day(engine, PM, adoption.Period.ending(NOW.date(), 3)).set_index("day")
    assert list(rate.index.strftime("%Y-%m-%d")) == ["2026-10-31", "2026-11-01", "2026-11-02"]
    assert rate["finished_runs"].tolist() == [0, 4, 2]
    assert rate["successful_runs"].tolist() == [0, 3, 0]
    assert math.isnan(rate["success_rate"].iloc[0])
    assert rate["success_rate"].iloc[1:].tolist() == [0.75, 0.0]


def test_records_and_manual_fetches_per_day(engine, settings):
    partner_id = add_partner(engine, settings, now=T0)
    add_run(engine, settings, partner_id, at=NOW - timedelta(days=1), created=40, invoices_seen=60)
    add_run(engine, settings, partner_id, at=NOW - 3 * HOUR, kind=RunKind.FETCH_NEW_DATA, trigger="manual",
            created=2, invoices_seen=5)
    add_run(engine, settings, partner_id, at=NOW - 2 * HOUR, kind=RunKind.FETCH_UNPAID, trigger="manual",
            updated=7, invoices_seen=30)
    add_run(engine, settings, partner_id, at=NOW - HOUR, kind=RunKind.FETCH_NEW_DATA, trigger="manual")
    synced = adoption.records_per_day(engine, PM, adoption.Period.ending(NOW.date(), 2))
    assert synced[["records_created", "invoices_read"]].values.tolist() == [[40, 60], [2, 35]]
    manual = adoption.manual_fetches_per_day(engine, PM, adoption.Period.ending(NOW.date(), 2))
    assert list(manual.columns) == ["day", "Fetch new data", "Fetch unpaid invoices"]
    assert manual[["Fetch new data", "Fetch unpaid invoices"]].values.tolist() == [[0, 0], [2, 1]]


def _refuse(engine, partner_id, kind, at):
    with engine.begin() as conn:
        cooldowns.record_refusal(conn, partner_id=partner_id, kind=kind, actor="ap@acme.example", now=at)


def test_cooldown_pressure_sets_refusals_against_fetches_within_the_dates(engine, settings):
    """Issue 14: cooldown pressure counted every refusal ever, whatever the period picked."""
    partner_id = add_partner(engine, settings, now=T0)
    add_run(engine, settings, partner_id, at=NOW - 3 * HOUR, kind=RunKind.FETCH_NEW_DATA, trigger="manual", created=1)
    add_run(engine, settings, partner_id, at=NOW - HOUR, kind=RunKind.FETCH_NEW_DATA, trigger="manual")
    add_run(engine, settings, partner_id, at=NOW - timedelta(days=20), kind=RunKind.FETCH_NEW_DATA, trigger="manual")
    for at in [NOW - HOUR] * 5 + [NOW - timedelta(days=20)] * 3:
        _refuse(engine, partner_id, RunKind.FETCH_NEW_DATA, at)
    _refuse(engine, partner_id, RunKind.FETCH_UNPAID, NOW - timedelta(days=20))

    pressure = adoption.cooldown_pressure(engine, PM, adoption.Period.ending(NOW.date(), 7)).set_index("fetch")

    new_data = pressure.loc["Fetch new data"]
    assert (new_data["fetches"], new_data["refusals"], new_data["empty_fetches"]) == (2, 5, 1)
    assert new_data["refusals_per_fetch"] == 2.5
    unpaid = pressure.loc["Fetch unpaid invoices"]
    assert (unpaid["fetches"], unpaid["refusals"]) == (0, 0)
    assert math.isnan(pressure.loc["Fetch unpaid invoices", "refusals_per_fetch"])
    whole = adoption.cooldown_pressure(engine, PM, PERIOD).set_index("fetch")
    assert whole["refusals"].to_dict() == {"Fetch new data": 8, "Fetch unpaid invoices": 1}


def test_a_press_refused_by_the_cooldown_counts_on_the_day_it_was_made(engine, settings):
    partner_id = add_partner(engine, settings, now=T0)
    partner = Principal(Role.PARTNER, "ap@acme.example", partner_id)
    fetches.request_manual_fetch(engine, partner, partner_id=partner_id, kind=RunKind.FETCH_UNPAID, now=NOW - HOUR,
                                 settings=settings)
    with engine.begin() as conn:  # the worker ran it
        conn.execute(update(JOB_TABLE).values(state=JobState.DONE, active_key=None))
    with pytest.raises(CooldownActive):
        fetches.request_manual_fetch(engine, partner, partner_id=partner_id, kind=RunKind.FETCH_UNPAID, now=NOW,
                                     settings=settings)

    today = adoption.Period(NOW.date(), NOW.date())
    assert adoption.cooldown_pressure(engine, PM, today).set_index("fetch").loc["Fetch unpaid invoices",
                                                                                  "refusals"] == 1
    yesterday = adoption.Period.ending(NOW.date() - timedelta(days=1), 1)
    assert adoption.cooldown_pressure(engine, PM, yesterday)["refusals"].sum() == 0


def test_autopay_coverage_is_the_unpaid_value_on_subtypes_with_an_enabled_rule(engine, settings):
    mapped = add_partner(engine, settings, name="Mapped", now=T0)
    add_agreements(engine, mapped, ["Backup", "Managed Services", "Break-fix"], now=NOW)
    add_rule(engine, mapped, 1, at=NOW)
    add_rule(engine, mapped, 2, at=NOW, enabled=False)
    # Backup: 100.00 unpaid + 50.00 partly paid; disabled subtype 200.00; no rule 300.00; no agreement 400.00; paid
    add_invoices(engine, mapped, [(1, 10000, 0), (1, 5000, 2500), (2, 20000, 0), (3, 30000, 0), (None, 40000, 0),
                                  (1, 0, 9900)], now=NOW)
    unmapped = add_partner(engine, settings, name="Unmapped", now=T0)
    add_agreements(engine, unmapped, ["Backup"], now=NOW)
    add_invoices(engine, unmapped, [(1, 50000, 0)], now=NOW)
    coverage = adoption.autopay_coverage(engine, PM)
    row = coverage.iloc[0]
    assert (row["currency"], row["unpaid_cents"], row["covered_cents"]) == ("USD", 155000, 15000)
    assert (row["unpaid"], row["covered"]) == ("1,550.00", "150.00")
    assert row["share"] == pytest.approx(15000 / 155000)


def test_the_report_holds_headline_tiles_and_no_invoice_level_columns(engine, settings, activation):
    add_agreements(engine, activation["alpha"], ["Backup"], now=NOW)
    add_invoices(engine, activation["alpha"], [(1, 1000, 0), (None, 3000, 0)], now=NOW)
    report = adoption.report(engine, PM, PERIOD)
    tiles = {tile.label: tile for tile in report.tiles()}
    assert tiles["Partners connected"].value == "3" and "1 more with HaloPSA as secondary" in tiles[
        "Partners connected"].help
    assert tiles["Auto-pay enabled"].value == "1 of 3"
    assert tiles["Unpaid on auto-pay (USD)"].value == "25%"
    assert tiles["Unpaid on auto-pay (USD)"].help.startswith("10.00 USD of 40.00 USD")
    assert tiles["Sync success rate"].value == "75%"  # the failed run is the only miss in the last 30 days
    assert tiles["Median time to first sync"].value == "3 h 1 min"
    assert tiles["Median time to first mapped subtype"].value == "2 days 0 h"  # 1 and 3 days after connecting
    frames = [report.funnel, report.records, report.success, report.manual, report.pressure, report.coverage,
              report.weekly]
    for frame in frames:
        assert not INVOICE_COLUMNS & set(frame.columns)
        assert len(frame) <= 31  # aggregates: a row per stage, day, fetch or currency, never per invoice
    assert not INVOICE_COLUMNS & set(report.partners.columns) and len(report.partners) == 4  # one row per partner


def test_partner_accounts_cannot_read_adoption(engine):
    partner = Principal(role=Role.PARTNER, user="ap@acme.example", partner_id=1)
    with pytest.raises(AccessDenied):
        adoption.autopay_coverage(engine, partner)
    for read in (adoption.funnel, adoption.records_per_day, adoption.success_rate_per_day,
                 adoption.manual_fetches_per_day, adoption.cooldown_pressure, adoption.partner_breakdown,
                 adoption.week_over_week, adoption.report):
        with pytest.raises(AccessDenied):
            read(engine, partner, PERIOD)
    with pytest.raises(AccessDenied):
        adoption.export_csv(engine, partner, PERIOD, now=NOW)


def test_an_empty_console_reports_zeros_not_errors(engine):
    report = adoption.report(engine, CS, adoption.Period.ending(NOW.date(), 7))
    assert report.funnel["partners"].tolist() == [0, 0, 0, 0]
    assert [tile.value for tile in report.tiles()] == ["0", "0 of 0", "none yet", "none yet", "no runs", "0", "0",
                                                       "no unpaid invoices"]
    assert report.coverage.empty and len(report.records) == 7 and report.partners.empty
    assert set(report.weekly["change"]) <= {"no change", ""}


# ---- issue 14: dates that apply everywhere, per partner, week over week, time to first sync and rule, CSV ---------

def test_the_funnel_follows_partners_connected_in_the_dates_as_they_stood_at_the_end(engine, activation):
    first_day = adoption.Period(T0.date(), T0.date())  # connected and first synced that day; rules came later
    funnel = adoption.funnel(engine, PM, first_day).set_index("stage")
    assert funnel["partners"].to_dict() == {"Connected": 3, "First successful sync": 2, "Subtype mapped": 0,
                                            "Auto-pay rule enabled": 0}
    after = adoption.Period(T0.date() + timedelta(days=1), NOW.date())  # nobody connected since
    assert adoption.funnel(engine, PM, after)["partners"].tolist() == [0, 0, 0, 0]


def test_the_funnel_gives_the_median_time_from_connecting(engine, activation):
    funnel = adoption.funnel(engine, PM, PERIOD).set_index("stage")
    assert funnel.loc["First successful sync", "median_from_connect"] == "3 h 1 min"
    assert funnel.loc["Subtype mapped", "median_hours_from_connect"] == pytest.approx(48)  # 1 and 3 days
    assert funnel.loc["Subtype mapped", "median_from_connect"] == "2 days 0 h"
    assert funnel.loc["Auto-pay rule enabled", "median_from_connect"] == "24 h"  # Alpha only


def test_a_funnel_stage_names_at_most_ten_partners_and_counts_the_rest(engine, settings):
    for n in range(12):
        add_partner(engine, settings, name=f"Partner {n:02d}", now=T0)
    stopped = adoption.funnel(engine, PM, PERIOD).set_index("stage").loc["Connected", "stopped_here"]
    assert stopped.startswith("Partner 00, Partner 01") and stopped.endswith("Partner 09 and 2 more")


def test_the_per_partner_breakdown_has_a_row_per_partner_with_its_times_and_activity(engine, settings, activation):
    add_run(engine, settings, activation["alpha"], at=NOW - HOUR, kind=RunKind.FETCH_NEW_DATA, trigger="manual",
            created=5)
    _refuse(engine, activation["alpha"], RunKind.FETCH_NEW_DATA, NOW - HOUR)

    table = adoption.partner_breakdown(engine, PM, PERIOD).set_index("partner")

    assert list(table.index) == ["Alpha", "Beta", "Delta", "Gamma"]
    assert table.loc["Delta", "integration"] == "Secondary" and table.loc["Alpha", "integration"] == "Primary"
    alpha = table.loc["Alpha"]
    assert (alpha["to_first_sync"], alpha["to_first_rule"], alpha["enabled_rules"]) == ("2 h 1 min", "24 h", 1)
    assert alpha["hours_to_first_sync"] == pytest.approx(2 + 1 / 60)
    assert (alpha["runs_finished"], alpha["manual_fetches"], alpha["cooldown_refusals"], alpha["records_created"]) == (
        2, 1, 1, 5)
    assert alpha["success_rate"] == 1.0
    assert table.loc["Beta", "success_rate"] == 0.5  # a failed run, then the backfill
    assert (table.loc["Gamma", "to_first_sync"], table.loc["Gamma", "to_first_rule"]) == ("not reached", "not reached")
    assert math.isnan(table.loc["Gamma", "success_rate"])
    earlier = adoption.partner_breakdown(engine, PM, adoption.Period(T0.date() - timedelta(days=3),
                                                                      T0.date() - timedelta(days=1)))
    assert earlier.empty  # nobody was connected yet


def test_week_over_week_compares_the_last_seven_days_with_the_seven_before(engine, settings):
    partner_id = add_partner(engine, settings, now=NOW - timedelta(days=9))
    for days_ago, status in [(9, RunStatus.SUCCEEDED), (8, RunStatus.FAILED), (2, RunStatus.SUCCEEDED),
                             (1, RunStatus.SUCCEEDED), (0, RunStatus.SUCCEEDED)]:
        add_run(engine, settings, partner_id, at=NOW - timedelta(days=days_ago, hours=1), status=status, created=10)
    add_run(engine, settings, partner_id, at=NOW - HOUR, kind=RunKind.FETCH_NEW_DATA, trigger="manual")

    weekly = adoption.week_over_week(engine, PM, adoption.Period.ending(NOW.date(), 3)).set_index("measure")

    assert weekly.loc["Runs finished"].to_dict() == {"this_week": "4", "previous_week": "2", "change": "+2 (+100%)"}
    assert weekly.loc["Records created", "change"] == "+10 (+50%)"  # 40 against 20
    assert weekly.loc["Sync success rate"].to_dict() == {"this_week": "100%", "previous_week": "50%",
                                                         "change": "+50.0 points"}
    assert weekly.loc["Partners connected"].to_dict() == {"this_week": "0", "previous_week": "1",
                                                          "change": "-1 (-100%)"}
    assert weekly.loc["Manual fetches", "change"] == "+1 (none before)"


def test_unpaid_value_on_auto_pay_is_one_row_and_tile_per_currency_and_none_is_its_own(engine, settings):
    for name, invoices, currency in [("Dollars", [(1, 10_000_000, 0), (1, 20_000, 0)], "USD"),
                                     ("Loonies", [(1, 5_000, 0)], "CAD"), ("Unnamed", [(None, 700, 0)], None)]:
        partner_id = add_partner(engine, settings, name=name, now=T0)
        add_agreements(engine, partner_id, ["Backup"], now=NOW)
        add_invoices(engine, partner_id, invoices, now=NOW, currency=currency)

    coverage = adoption.autopay_coverage(engine, PM)

    assert list(coverage["currency"]) == ["USD", "CAD", "no currency"]  # most invoices first, no currency last
    assert list(coverage["unpaid"]) == ["100,200.00", "50.00", "7.00"]
    tiles = {t.label: t for t in adoption.report(engine, PM, PERIOD).tiles()}
    assert {label for label in tiles if label.startswith("Unpaid on auto-pay")} == {
        "Unpaid on auto-pay (USD)", "Unpaid on auto-pay (CAD)", "Unpaid on auto-pay (no currency)"}
    assert tiles["Unpaid on auto-pay (no currency)"].help.startswith("0.00 (no currency) of 7.00 (no currency)")


def test_the_csv_export_has_a_formula_safe_row_per_partner_and_is_audited(engine, settings, activation):
    add_partner(engine, settings, name="=HYPERLINK(\"http://evil.example\")", now=T0)

    export = adoption.export_csv(engine, PM, PERIOD, now=NOW)

    rows = list(csv.DictReader(io.StringIO(export.text)))
    assert export.rows == len(rows) == 5
    by_name = {row["partner"]: row for row in rows}
    assert "'=HYPERLINK(\"http://evil.example\")" in by_name
    assert (by_name["Alpha"]["hours_to_first_sync"], by_name["Alpha"]["period_first"]) == ("2.02", "2026-10-04")
    assert by_name["Gamma"]["hours_to_first_sync"] == ""
    with engine.connect() as conn:
        [event] = conn.execute(select(AUDIT_TABLE).where(AUDIT_TABLE.c.action == "export")).all()
    assert (event.actor, event.partner_id, event.at) == ("pm@example.com", None, NOW)
    assert "5 rows" in event.detail and "2026-10-04 to 2026-11-02" in event.detail


def test_the_csv_export_keeps_the_download_limits(engine, settings, activation, monkeypatch):
    monkeypatch.setattr(exports, "MAX_DOWNLOAD_ROWS", 3)
    with pytest.raises(Refused, match="4 rows"):
        adoption.export_csv(engine, PM, PERIOD, now=NOW)
    with engine.connect() as conn:
        assert conn.execute(select(AUDIT_TABLE).where(AUDIT_TABLE.c.action == "export")).first() is None


@pytest.mark.parametrize(("first", "last", "message"), [
    (date(2026, 11, 2), date(2026, 11, 1), "end date is before the start date"),
    (date(2025, 1, 1), date(2026, 11, 1), "pick at most 366"),
])
def test_dates_out_of_order_or_too_far_apart_are_refused_saying_what_to_pick(first, last, message):
    with pytest.raises(BadInput, match=message) as caught:
        adoption.Period(first, last)
    assert caught.value.field == "period"


@pytest.mark.parametrize(("preset", "dates", "expected"), [
    (7, (), (date(2026, 10, 27), date(2026, 11, 2))),
    (adoption.CUSTOM, (date(2026, 9, 1), date(2026, 9, 30)), (date(2026, 9, 1), date(2026, 9, 30))),
    (adoption.CUSTOM, (date(2026, 9, 1),), (date(2026, 9, 1), date(2026, 9, 1))),  # the end still to be picked
])
def test_the_period_a_person_chose(preset, dates, expected):
    period = adoption.Period.chosen(NOW.date(), preset, dates)
    assert (period.first, period.last) == expected


def test_a_custom_period_without_dates_says_to_pick_them():
    with pytest.raises(BadInput, match="Pick a start date and an end date"):
        adoption.Period.chosen(NOW.date(), adoption.CUSTOM, ())
    with pytest.raises(BadInput, match="Pick one of the periods"):
        adoption.Period.chosen(NOW.date(), 12, ())

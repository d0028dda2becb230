import math
from datetime import timedelta

import pytest
from sqlalchemy import update

from core.access import Principal
from core.console import adoption
from core.errors import AccessDenied
from core.store.tables import COOLDOWN_TABLE, IntegrationRole, Role, RunKind, RunStatus
from core.sync import runs
from tests.support.clock import NOW
from tests.support.factories import add_agreements, add_invoices, add_partner, add_rule, add_run

CS = Principal(role=Role.CS, user="cs@example.com")
PM = Principal(role=Role.PM, user="pm@example.com")
T0 = NOW - timedelta(days=10)
HOUR = timedelta(hours=1)
INVOICE_COLUMNS = {"halo_id", "invoice_number", "third_party_number", "display_number", "customer", "customer_name",
                   "customer_halo_id", "due_date", "invoice_date", "total_cents", "amount_due_cents", "client_id",
                   "client_secret", "client_secret_encrypted"}


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
    funnel = adoption.funnel(engine, PM).set_index("stage")
    assert funnel["partners"].to_dict() == {"Connected": 3, "First successful sync": 2, "Subtype mapped": 2,
                                            "Auto-pay rule enabled": 1}
    assert funnel["stopped_here"].to_dict() == {"Connected": "Gamma", "First successful sync": "",
                                                "Subtype mapped": "Beta", "Auto-pay rule enabled": ""}
    assert funnel.loc["Subtype mapped", "share_of_connected"] == pytest.approx(2 / 3)


def test_funnel_medians_are_taken_between_consecutive_stages(engine, activation):
    funnel = adoption.funnel(engine, CS).set_index("stage")
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
    rate = adoption.success_rate_per_day(engine, PM, now=NOW, days=3).set_index("day")
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
    synced = adoption.records_per_day(engine, PM, now=NOW, days=2)
    assert synced[["records_created", "invoices_read"]].values.tolist() == [[40, 60], [2, 35]]
    manual = adoption.manual_fetches_per_day(engine, PM, now=NOW, days=2)
    assert list(manual.columns) == ["day", "Fetch new data", "Fetch unpaid invoices"]
    assert manual[["Fetch new data", "Fetch unpaid invoices"]].values.tolist() == [[0, 0], [2, 1]]


def test_cooldown_pressure_sets_refusals_against_fetches(engine, settings):
    partner_id = add_partner(engine, settings, now=T0)
    add_run(engine, settings, partner_id, at=NOW - 3 * HOUR, kind=RunKind.FETCH_NEW_DATA, trigger="manual", created=1)
    add_run(engine, settings, partner_id, at=NOW - HOUR, kind=RunKind.FETCH_NEW_DATA, trigger="manual")
    with engine.begin() as conn:
        conn.execute(update(COOLDOWN_TABLE).where(COOLDOWN_TABLE.c.kind == RunKind.FETCH_NEW_DATA)
                     .values(refused_count=5))
    pressure = adoption.cooldown_pressure(engine, PM).set_index("fetch")
    new_data = pressure.loc["Fetch new data"]
    assert (new_data["fetches"], new_data["refusals"], new_data["empty_fetches"]) == (2, 5, 1)
    assert new_data["refusals_per_fetch"] == 2.5
    assert pressure.loc["Fetch unpaid invoices", "fetches"] == 0
    assert math.isnan(pressure.loc["Fetch unpaid invoices", "refusals_per_fetch"])


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
    assert (row["unpaid"], row["covered"]) == ("1550.00", "150.00")
    assert row["share"] == pytest.approx(15000 / 155000)


def test_the_report_holds_headline_tiles_and_no_invoice_level_columns(engine, settings, activation):
    add_agreements(engine, activation["alpha"], ["Backup"], now=NOW)
    add_invoices(engine, activation["alpha"], [(1, 1000, 0), (None, 3000, 0)], now=NOW)
    report = adoption.report(engine, PM, now=NOW)
    tiles = {tile.label: tile for tile in report.tiles()}
    assert tiles["Partners connected"].value == "3" and "1 more as secondary" in tiles["Partners connected"].help
    assert tiles["Auto-pay enabled"].value == "1 of 3"
    assert tiles["Unpaid value on auto-pay"].value == "25%"
    assert tiles["Unpaid value on auto-pay"].help.startswith("10.00 of 40.00 USD")
    assert tiles["Sync success rate"].value == "75%"  # the failed run is the only miss in the last 30 days
    frames = [report.funnel, report.records, report.success, report.manual, report.pressure, report.coverage]
    for frame in frames:
        assert not INVOICE_COLUMNS & set(frame.columns)
        assert len(frame) <= 31  # aggregates: a row per stage, day, fetch or currency, never per invoice


def test_partner_accounts_cannot_read_adoption(engine):
    partner = Principal(role=Role.PARTNER, user="ap@acme.example", partner_id=1)
    for read in (adoption.funnel, adoption.cooldown_pressure, adoption.autopay_coverage):
        with pytest.raises(AccessDenied):
            read(engine, partner)
    for per_day in (adoption.records_per_day, adoption.success_rate_per_day, adoption.manual_fetches_per_day,
                    adoption.report):
        with pytest.raises(AccessDenied):
            per_day(engine, partner, now=NOW)


def test_an_empty_console_reports_zeros_not_errors(engine):
    report = adoption.report(engine, CS, now=NOW, days=7)
    assert report.funnel["partners"].tolist() == [0, 0, 0, 0]
    assert [tile.value for tile in report.tiles()] == ["0", "0 of 0", "no unpaid invoices", "no runs", "0", "0"]
    assert report.coverage.empty and len(report.records) == 7

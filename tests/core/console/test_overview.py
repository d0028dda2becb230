from dataclasses import replace
from datetime import timedelta

import pytest
from sqlalchemy import event, update

from core.access import Principal
from core.console import overview as overview_screen
from core.console.overview import Freshness, classify_freshness
from core.errors import AccessDenied
from core.store import database
from core.store.tables import COOLDOWN_TABLE, Connection, IntegrationRole, Role, RunKind, RunStatus
from tests.support import databases
from tests.support.clock import NOW
from tests.support.factories import add_agreements, add_partner, add_rule, add_run

CS = Principal(role=Role.CS, user="cs@example.com")
HOUR = timedelta(hours=1)


def _classify(last_success_hours_ago, *, role="primary", latest_failed=False, connected_hours_ago=48.0):
    return classify_freshness(
        role=role, connected_at=NOW - timedelta(hours=connected_hours_ago),
        last_success=None if last_success_hours_ago is None else NOW - timedelta(hours=last_success_hours_ago),
        latest_failed=latest_failed, now=NOW, interval=HOUR,
    )


@pytest.mark.parametrize(("hours_ago", "expected"), [
    (0, Freshness.ON_TIME),
    (1.5, Freshness.ON_TIME),          # exactly 1.5 × the interval is still on time
    (1.5 + 1 / 3600, Freshness.LATE),  # one second later it is late
    (24, Freshness.LATE),              # exactly 24 h is still late
    (24 + 1 / 3600, Freshness.FAILING),
    (None, Freshness.FAILING),         # connected two days ago and never succeeded
])
def test_freshness_boundaries(hours_ago, expected):
    assert _classify(hours_ago) == expected


def test_a_failed_latest_run_is_failing_even_right_after_a_success():
    assert _classify(0.5, latest_failed=True) == Freshness.FAILING


def test_a_new_connection_is_late_not_failing_during_its_first_day():
    assert _classify(None, connected_hours_ago=3) == Freshness.LATE
    assert _classify(None, connected_hours_ago=25) == Freshness.FAILING


def test_secondary_and_unconnected_partners_are_not_judged_on_freshness():
    assert _classify(None, role=IntegrationRole.SECONDARY.value, latest_failed=True) == Freshness.NOT_SYNCING
    assert _classify(None, role=None) == Freshness.NOT_CONNECTED


@pytest.fixture
def fleet_of_four(engine, settings):
    """healthy: on time, mapped; broken: failing twice with auth errors; scoped: missing scopes, unmapped, stale;
    second: secondary integration."""
    old = NOW - timedelta(days=5)
    healthy = add_partner(engine, settings, name="Healthy IT", now=old)
    broken = add_partner(engine, settings, name="Broken Bits", now=old)
    scoped = add_partner(engine, settings, name="Scoped Ltd", now=old)
    second = add_partner(engine, settings, name="Second Co", now=old, role=IntegrationRole.SECONDARY)
    add_run(engine, settings, healthy, at=NOW - timedelta(minutes=30))
    add_agreements(engine, healthy, ["Backup"], now=NOW)
    add_rule(engine, healthy, 1, at=old)
    add_run(engine, settings, broken, at=NOW - 5 * HOUR)
    for hours in (2, 1):
        add_run(engine, settings, broken, at=NOW - hours * HOUR, status=RunStatus.FAILED, error_kind="auth",
                error="HaloPSA rejected the Client ID or Client Secret.")
    add_run(engine, settings, scoped, at=NOW - 30 * HOUR)
    add_agreements(engine, scoped, ["Backup", "Managed Services", "Backup"], now=NOW)
    with engine.begin() as conn:
        conn.execute(update(Connection.__table__).where(Connection.__table__.c.partner_id == scoped)
                     .values(missing_scopes="read:contracts edit:contracts"))
    return {"healthy": healthy, "broken": broken, "scoped": scoped, "second": second}


def _by_partner(frame):
    return frame.set_index("partner")


def test_overview_lists_every_partner_with_its_state(engine, settings, fleet_of_four):
    table = _by_partner(overview_screen.overview(engine, CS, now=NOW, settings=settings))
    assert list(table.index) == ["Broken Bits", "Healthy IT", "Scoped Ltd", "Second Co"]
    assert table["freshness"].to_dict() == {"Broken Bits": "failing", "Healthy IT": "on time",
                                            "Scoped Ltd": "failing", "Second Co": "not syncing"}
    assert table.loc["Healthy IT", "last_success_ago"] == "29 min ago"
    assert table.loc["Broken Bits", "latest_run"] == "failed"
    assert table.loc["Scoped Ltd", "missing_permissions"] == "read:contracts, edit:contracts"
    assert table.loc["Second Co", "fetch_unpaid"] == "not offered"
    assert table.loc["Healthy IT", "fetch_unpaid"] == "available now"


def test_overview_shows_when_a_cooldown_opens(engine, settings, fleet_of_four):
    with engine.begin() as conn:
        conn.execute(update(COOLDOWN_TABLE).where(COOLDOWN_TABLE.c.partner_id == fleet_of_four["healthy"],
                                                  COOLDOWN_TABLE.c.kind == RunKind.FETCH_UNPAID)
                     .values(available_at=NOW + timedelta(hours=7, minutes=5)))
    table = _by_partner(overview_screen.overview(engine, CS, now=NOW, settings=settings))
    assert table.loc["Healthy IT", "fetch_unpaid"] == "available at 19:05 UTC"
    assert table.loc["Healthy IT", "fetch_new_data"] == "available now"


def test_open_record_errors_count_only_runs_since_the_last_clean_run(engine, settings):
    partner_id = add_partner(engine, settings, now=NOW - timedelta(days=2))
    add_run(engine, settings, partner_id, at=NOW - 4 * HOUR, status=RunStatus.PARTIAL, record_errors=5)
    add_run(engine, settings, partner_id, at=NOW - 3 * HOUR)  # clean: closes the five above
    add_run(engine, settings, partner_id, at=NOW - 2 * HOUR, status=RunStatus.PARTIAL, record_errors=2)
    add_run(engine, settings, partner_id, at=NOW - HOUR, status=RunStatus.PARTIAL, record_errors=1)
    table = overview_screen.overview(engine, CS, now=NOW, settings=settings)
    assert table.loc[0, "open_record_errors"] == 3


def test_worklist_gives_each_reason_with_a_next_step(engine, fleet_of_four):
    items = overview_screen.worklist(engine, CS, now=NOW)
    reasons = {(row.partner, row.reason): row for row in items.itertuples()}
    assert set(reasons) == {
        ("Broken Bits", "Latest runs failing"),
        ("Scoped Ltd", "No successful sync in 24 h"),
        ("Scoped Ltd", "Missing permissions"),
        ("Scoped Ltd", "No subtype mapped"),
    }
    failing = reasons["Broken Bits", "Latest runs failing"]
    assert failing.detail == "The last 2 runs failed: HaloPSA rejected the Client ID or Client Secret."
    assert "new Client Secret" in failing.next_step
    assert "read:contracts, edit:contracts" in reasons["Scoped Ltd", "Missing permissions"].detail
    assert reasons["Scoped Ltd", "No subtype mapped"].detail.startswith("3 agreements synced across 2 subtypes")
    assert "29 h ago" in reasons["Scoped Ltd", "No successful sync in 24 h"].detail
    assert all(items["next_step"].str.len() > 20)


def test_a_connected_partner_that_never_synced_is_on_the_worklist_after_a_day(engine, settings):
    add_partner(engine, settings, name="Fresh", now=NOW - 2 * HOUR)
    add_partner(engine, settings, name="Forgotten", now=NOW - 25 * HOUR)
    items = overview_screen.worklist(engine, CS, now=NOW)
    assert items[["partner", "reason"]].values.tolist() == [["Forgotten", "No successful sync in 24 h"]]
    assert items.loc[0, "detail"] == "Connected, never synced."


def test_filters_combine_role_freshness_and_text(engine, settings, fleet_of_four):
    table = overview_screen.overview(engine, CS, now=NOW, settings=settings)
    assert list(overview_screen.filter_overview(table, states=["failing"])["partner"]) == ["Broken Bits", "Scoped Ltd"]
    assert list(overview_screen.filter_overview(table, roles=["secondary"])["partner"]) == ["Second Co"]
    assert list(overview_screen.filter_overview(table, search="CONTRACTS")["partner"]) == ["Scoped Ltd"]
    assert overview_screen.filter_overview(table, roles=["secondary"], states=["failing"]).empty
    assert overview_screen.freshness_counts(table) == {"on time": 1, "late": 0, "failing": 2, "not syncing": 1,
                                             "not connected": 0}


def _queries_for(engine, settings, partners):
    for i in range(partners):
        partner_id = add_partner(engine, settings, name=f"Partner {i:03d}", now=NOW - timedelta(days=3))
        add_run(engine, settings, partner_id, at=NOW - 3 * HOUR, status=RunStatus.PARTIAL, record_errors=1)
        add_run(engine, settings, partner_id, at=NOW - HOUR, status=RunStatus.FAILED, error="down")
        add_rule(engine, partner_id, 1, at=NOW)
    statements = []

    def count(conn, cursor, statement, parameters, context, executemany):
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        overview = overview_screen.overview(engine, CS, now=NOW, settings=settings)
        worklist = overview_screen.worklist(engine, CS, now=NOW)
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert len(overview) == partners and len(worklist) == partners
    return len(statements)


def test_overview_and_worklist_use_the_same_number_of_queries_for_2_and_20_partners(engine, settings, tmp_path):
    other_settings = replace(settings, database_url=databases.database_url(tmp_path, "other"))
    other = database.engine_for(other_settings)
    try:
        assert _queries_for(engine, settings, 2) == _queries_for(other, other_settings, 20)
    finally:
        other.dispose()


@pytest.mark.parametrize("principal", [
    Principal(role=Role.PARTNER, user="ap@acme.example", partner_id=1),
    Principal(role=Role.PM, user="pm@example.com"),
])
def test_only_customer_success_sees_the_fleet(engine, settings, fleet_of_four, principal):
    with pytest.raises(AccessDenied):
        overview_screen.overview(engine, principal, now=NOW, settings=settings)
    with pytest.raises(AccessDenied):
        overview_screen.worklist(engine, principal, now=NOW)


def test_an_empty_fleet_gives_empty_tables(engine, settings):
    table = overview_screen.overview(engine, CS, now=NOW, settings=settings)
    assert table.empty and list(table.columns) == overview_screen.OVERVIEW_COLUMNS
    assert overview_screen.filter_overview(table, search="x").empty
    assert overview_screen.worklist(engine, CS, now=NOW).empty

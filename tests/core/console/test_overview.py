from dataclasses import replace
from datetime import timedelta

import pytest
from sqlalchemy import event, update

from core.access import Principal
from core.console import overview as overview_screen
from core.console.overview import Freshness, classify_freshness
from core.errors import AccessDenied
from core.health import issues
from core.store import database
from core.store.tables import (
    COOLDOWN_TABLE,
    ISSUE_TABLE,
    PARTNER_TABLE,
    Connection,
    IntegrationRole,
    Role,
    RunKind,
    RunStatus,
)
from tests.support import databases
from tests.support.clock import NOW
from tests.support.factories import add_agreements, add_partner, add_rule, add_run, add_stuck_job

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


def _issues_now(engine, settings, at=NOW):
    issues.evaluate(engine, now=at, settings=settings)
    return overview_screen.issues(engine, CS, now=at)


def test_the_worklist_lists_issues_by_severity_then_age_with_a_link_to_the_fixing_page(engine, settings,
                                                                                      fleet_of_four):
    issues.evaluate(engine, now=NOW - HOUR, settings=settings)
    with engine.begin() as conn:  # Broken's auth issue is the oldest of them
        conn.execute(update(ISSUE_TABLE).where(ISSUE_TABLE.c.partner_id == fleet_of_four["broken"])
                     .values(first_seen=NOW - 3 * HOUR))
    listed = _issues_now(engine, settings)
    rows = [(row.severity, row.type, row.partner) for row in listed.itertuples()]
    assert rows == [
        ("high", "Auth failed", "Broken Bits"),
        ("high", "Permissions missing", "Scoped Ltd"),
        ("high", "No success for 24 h", "Scoped Ltd"),
        ("low", "Subtype unmapped", "Scoped Ltd"),
    ]
    broken, scoped = fleet_of_four["broken"], fleet_of_four["scoped"]
    auth = listed[listed["type"] == "Auth failed"].iloc[0]
    assert auth["found"] == ("HaloPSA refused the credentials; 2 runs failed in a row since the last success at "
                             "2026-11-02 07:01 UTC: HaloPSA rejected the Client ID or Client Secret.")
    assert (auth["owner"], auth["link"]) == ("partner", f"/connection?partner={broken}")
    assert "new Client Secret" in auth["next_step"]
    unmapped = listed[listed["type"] == "Subtype unmapped"].iloc[0]
    assert unmapped["link"] == f"/agreements?partner={scoped}"
    assert unmapped["found"].startswith("3 agreements synced across 2 subtypes")
    assert listed.iloc[0]["first_seen"] == NOW - 3 * HOUR and listed.iloc[0]["last_seen"] == NOW
    assert all(listed["next_step"].str.len() > 20) and set(listed["snoozed"]) == {""}


def test_worklist_filters_by_severity_owner_and_type(engine, settings, fleet_of_four):
    listed = _issues_now(engine, settings)
    assert set(overview_screen.filter_issues(listed, severities=["low"])["type"]) == {"Subtype unmapped"}
    assert set(overview_screen.filter_issues(listed, owners=["ours"])["type"]) == {"No success for 24 h"}
    assert list(overview_screen.filter_issues(listed, types=["Auth failed"], owners=["partner"])["partner"]) == [
        "Broken Bits"]
    assert overview_screen.filter_issues(listed, severities=["critical"]).empty
    assert set(overview_screen.SEVERITY_CHOICES) >= set(listed["severity"])
    assert set(overview_screen.OWNER_CHOICES) >= set(listed["owner"])
    assert set(overview_screen.TYPE_CHOICES) >= set(listed["type"])
    assert overview_screen.issue_choices(listed.head(1)) == {
        int(listed.iloc[0]["issue_id"]): f"high · {listed.iloc[0]['type']} · {listed.iloc[0]['partner']}"}


def test_a_long_worklist_is_cut_after_the_most_urgent_and_the_caption_says_so(engine, settings, fleet_of_four,
                                                                              monkeypatch):
    listed = _issues_now(engine, settings)
    monkeypatch.setattr(overview_screen, "WORKLIST_ROWS", 2)
    cut = overview_screen.listed_issues(listed)
    assert list(cut["issue_id"]) == list(listed["issue_id"][:2])
    assert overview_screen.worklist_caption(2, 4, 4).startswith(
        "The first 2 of 4 matching issues (4 open); filter by severity, owner or type to list the others.")
    assert overview_screen.worklist_caption(1, 1, 4).startswith("1 of 4 open issues. Ordered by severity")


def test_recently_resolved_shows_the_last_seven_days(engine, settings, fleet_of_four):
    _issues_now(engine, settings)
    add_run(engine, settings, fleet_of_four["broken"], at=NOW + HOUR)  # a success: auth is fine again
    resolved_at = NOW + 3 * HOUR
    assert overview_screen.issues(engine, CS, now=resolved_at)["type"].tolist().count("Auth failed") == 1
    listed = _issues_now(engine, settings, resolved_at)
    assert "Auth failed" not in set(listed["type"])
    recent = overview_screen.recently_resolved(engine, CS, now=resolved_at)
    assert [(row.type, row.partner, row.resolved_at) for row in recent.itertuples()] == [
        ("Auth failed", "Broken Bits", resolved_at)]
    assert overview_screen.recently_resolved(engine, CS, now=resolved_at + timedelta(days=7, seconds=1)).empty


def test_the_fleets_own_issue_has_no_partner_and_links_to_the_page(engine, settings):
    partner_id = add_partner(engine, settings, now=NOW - timedelta(days=1))
    add_stuck_job(engine, partner_id)
    listed = _issues_now(engine, settings)
    fleet = listed[listed["type"] == "Worker down"].iloc[0]
    assert (fleet["severity"], fleet["partner"], fleet["link"]) == ("critical", "Whole fleet", "/syncs")
    assert listed.iloc[0]["type"] == "Worker down"


def test_filters_combine_role_freshness_and_text(engine, settings, fleet_of_four):
    table = overview_screen.overview(engine, CS, now=NOW, settings=settings)
    assert list(overview_screen.filter_overview(table, states=["failing"])["partner"]) == ["Broken Bits", "Scoped Ltd"]
    assert list(overview_screen.filter_overview(table, roles=["secondary"])["partner"]) == ["Second Co"]
    assert list(overview_screen.filter_overview(table, search="CONTRACTS")["partner"]) == ["Scoped Ltd"]
    assert overview_screen.filter_overview(table, roles=["secondary"], states=["failing"]).empty
    assert overview_screen.fleet_tiles(table) == {"on time": 1, "late": 0, "failing": 2, "not syncing by design": 1,
                                                  "never synced": 0}


def test_the_tiles_partition_the_fleet(engine, settings, fleet_of_four):
    new = add_partner(engine, settings, name="New Co", now=NOW - 2 * HOUR)  # connected, no success yet
    with engine.begin() as conn:  # a partner whose connection is gone
        conn.execute(PARTNER_TABLE.insert().values(name="Gone Ltd", status="disconnected", created_at=NOW))
    add_run(engine, settings, new, at=NOW - HOUR, status=RunStatus.FAILED, error="down")
    table = overview_screen.overview(engine, CS, now=NOW, settings=settings)
    tiles = overview_screen.fleet_tiles(table)
    assert sum(tiles.values()) == len(table) == 6
    assert tiles == {"on time": 1, "late": 0, "failing": 2, "not syncing by design": 1, "never synced": 2}
    by_partner = table.set_index("partner")
    assert by_partner.loc["Gone Ltd", "last_success_at"] == "never"
    assert by_partner.loc["Healthy IT", "last_success_at"] == "2026-11-02 11:31"
    assert "None" not in set(table["last_success_at"]) | set(table["last_success_ago"])


def _queries_for(engine, settings, partners):
    for i in range(partners):
        partner_id = add_partner(engine, settings, name=f"Partner {i:03d}", now=NOW - timedelta(days=3))
        add_run(engine, settings, partner_id, at=NOW - 3 * HOUR, status=RunStatus.PARTIAL, record_errors=1)
        add_run(engine, settings, partner_id, at=NOW - HOUR, status=RunStatus.FAILED, error="down")
        add_rule(engine, partner_id, 1, at=NOW)
    issues.evaluate(engine, now=NOW - HOUR, settings=settings)  # failing runs and record errors opened
    statements = []

    def count(conn, cursor, statement, parameters, context, executemany):
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        overview = overview_screen.overview(engine, CS, now=NOW, settings=settings)
        found = issues.evaluate(engine, now=NOW, settings=settings)  # the steady state: every issue seen again
        worklist = overview_screen.issues(engine, CS, now=NOW)
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert len(overview) == partners and len(worklist) == 2 * partners and found == []
    return len(statements)


def test_overview_evaluation_and_worklist_take_as_many_queries_for_2_as_for_20_partners(engine, settings, tmp_path):
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
    for read in (overview_screen.issues, overview_screen.recently_resolved):
        with pytest.raises(AccessDenied):
            read(engine, principal, now=NOW)


def test_an_empty_fleet_gives_empty_tables(engine, settings):
    table = overview_screen.overview(engine, CS, now=NOW, settings=settings)
    assert table.empty and list(table.columns) == overview_screen.OVERVIEW_COLUMNS
    assert overview_screen.filter_overview(table, search="x").empty
    assert overview_screen.issues(engine, CS, now=NOW).empty
    assert list(overview_screen.issues(engine, CS, now=NOW).columns) == overview_screen.ISSUE_COLUMNS
    assert overview_screen.fleet_tiles(table) == dict.fromkeys(overview_screen.fleet_tiles(table), 0)

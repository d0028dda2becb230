from datetime import date, timedelta

import pytest

from core.access import Principal
from core.console import syncs
from core.errors import AccessDenied, NotFound
from core.halopsa.records import RecordError
from core.store.tables import IntegrationRole, Role, RunCounters, RunKind, RunStatus
from core.sync import runs
from core.sync.runs import RunResult
from tests.support.clock import NOW
from tests.support.factories import add_partner

CS = Principal(role=Role.CS, user="cs@example.com")
PM = Principal(role=Role.PM, user="pm@example.com")


def _run(engine, settings, partner_id, *, at, kind=RunKind.SCHEDULED, status=RunStatus.SUCCEEDED, created=0,
         updated=0, minutes=2, manual=False, actor="scheduler", errors=()):
    run_id = runs.start_run(engine, partner_id=partner_id, partner_name="p", kind=kind,
                            trigger="manual" if manual else "schedule", actor=actor, now=at, settings=settings,
                            claim_cooldown=manual)
    with engine.begin() as conn:
        runs.save_progress(conn, run_id, partner_id, now=at, created=created, updated=updated, rejected=len(errors))
        runs.add_record_errors(conn, run_id, partner_id, list(errors))
    if status != RunStatus.RUNNING:
        runs.finish_run(engine, run_id, partner_id, status=status, now=at + timedelta(minutes=minutes))
    return run_id


@pytest.fixture
def two_partners(engine, settings):
    acme = add_partner(engine, settings, name="Acme MSP", now=NOW)
    globex = add_partner(engine, settings, name="Globex", now=NOW, role=IntegrationRole.SECONDARY)
    for day in range(5):
        _run(engine, settings, acme, at=NOW - timedelta(days=day, hours=1), created=day, updated=10 + day,
             status=RunStatus.FAILED if day == 2 else RunStatus.SUCCEEDED)
    _run(engine, settings, globex, at=NOW - timedelta(hours=3), kind=RunKind.BACKFILL)
    return acme, globex


def test_a_partner_user_asking_for_another_partners_runs_is_denied(engine, two_partners):
    acme, globex = two_partners
    own = Principal(role=Role.PARTNER, user="ap@acme.example", partner_id=acme)
    assert syncs.runs_page(engine, own, acme).total == 5
    with pytest.raises(AccessDenied):
        syncs.runs_page(engine, own, globex)
    with pytest.raises(AccessDenied):
        syncs.manual_fetch_states(engine, own, globex, now=NOW)


@pytest.mark.parametrize("call", [
    lambda engine, pid: syncs.runs_page(engine, PM, pid),
    lambda engine, pid: syncs.chart_data(engine, PM, pid),
    lambda engine, pid: syncs.manual_fetch_states(engine, PM, pid, now=NOW),
    lambda engine, pid: syncs.run_detail(engine, PM, pid, 1),
])
def test_product_managers_never_get_a_partners_runs(engine, two_partners, call):
    with pytest.raises(AccessDenied):
        call(engine, two_partners[0])


def test_runs_page_is_newest_first_with_labels_and_durations(engine, two_partners):
    page = syncs.runs_page(engine, CS, two_partners[0])
    rows = page.rows
    assert list(rows.columns) == syncs.RUN_COLUMNS
    assert rows["Started (UTC)"].is_monotonic_decreasing
    assert set(rows["Kind"]) == {"Scheduled"} and set(rows["Status"]) == {"Succeeded", "Failed"}
    assert set(rows["Duration (s)"]) == {120.0}
    assert rows.iloc[0]["Created"] == 0 and rows.iloc[-1]["Created"] == 4


@pytest.mark.parametrize(("filters", "expected"), [
    (syncs.RunFilter(statuses=("failed",)), 1),
    (syncs.RunFilter(kinds=("backfill",)), 0),
    (syncs.RunFilter(kinds=("scheduled",), statuses=("succeeded",)), 4),
    (syncs.RunFilter(start=date(2026, 10, 31)), 3),
    (syncs.RunFilter(start=date(2026, 10, 30), end=date(2026, 10, 31)), 2),
    (syncs.RunFilter(end=date(2026, 10, 28)), 0),
])
def test_filters_by_kind_status_and_inclusive_utc_days(engine, two_partners, filters, expected):
    assert syncs.runs_page(engine, CS, two_partners[0], filters=filters).total == expected


def test_filter_from_date_picker_values():
    assert syncs.RunFilter.from_inputs([], [], ()) == syncs.RunFilter()
    picking = syncs.RunFilter.from_inputs(["scheduled"], [], (date(2026, 11, 1),))
    assert (picking.start, picking.end, picking.kinds) == (date(2026, 11, 1), date(2026, 11, 1), ("scheduled",))
    reversed_range = syncs.RunFilter.from_inputs([], ["failed"], (date(2026, 11, 2), date(2026, 10, 1)))
    assert (reversed_range.start, reversed_range.end) == (date(2026, 10, 1), date(2026, 11, 2))


def test_pages_are_bounded_and_clamped_to_the_last_page(engine, two_partners):
    acme = two_partners[0]
    second = syncs.runs_page(engine, CS, acme, page=1, page_size=2)
    assert (second.total, second.pages, len(second.rows)) == (5, 3, 2)
    beyond = syncs.runs_page(engine, CS, acme, page=99, page_size=2)
    assert beyond.page == 2 and len(beyond.rows) == 1
    assert syncs.runs_page(engine, CS, acme, page_size=10_000).page_size == syncs.MAX_PAGE_SIZE
    assert set(second.choices) == set(second.rows["Run"])


def test_an_empty_history_gives_an_empty_table_with_its_columns(engine, settings):
    partner_id = add_partner(engine, settings, now=NOW)
    page = syncs.runs_page(engine, CS, partner_id)
    assert page.total == 0 and page.pages == 1 and list(page.rows.columns) == syncs.RUN_COLUMNS


def test_run_detail_lists_each_record_error_with_its_reason(engine, settings, two_partners):
    acme, globex = two_partners
    errors = [RecordError("invoice", 7, "total is not a number", {"id": 7}),
              RecordError("customer", None, "record has no id", {"name": "x"})]
    run_id = _run(engine, settings, acme, at=NOW - timedelta(minutes=30), status=RunStatus.PARTIAL, errors=errors)
    detail = syncs.run_detail(engine, CS, acme, run_id)
    assert detail.errors_total == 2 and detail.counts["Rejected"] == 2
    assert list(detail.errors["Reason"]) == ["total is not a number", "record has no id"]
    assert f"run #{run_id}" in detail.headline and "partial" in detail.headline
    with pytest.raises(NotFound):
        syncs.run_detail(engine, CS, globex, run_id)


def test_manual_fetch_states_say_who_ran_it_last_what_it_found_and_when_it_opens(engine, settings):
    partner_id = add_partner(engine, settings, now=NOW)
    _run(engine, settings, partner_id, at=NOW - timedelta(minutes=20), kind=RunKind.FETCH_NEW_DATA, manual=True,
         actor="ap@acme.example", created=3, updated=5)
    states = {s.kind: s for s in syncs.manual_fetch_states(engine, CS, partner_id, now=NOW)}
    new_data, unpaid = states["fetch_new_data"], states["fetch_unpaid"]
    assert new_data.locked and new_data.remaining == timedelta(minutes=40)
    assert new_data.availability == "Available in 0:40:00, at 2026-11-02 12:40:00 UTC."
    assert new_data.last_run == ("Last run by ap@acme.example at 2026-11-02 11:40:00 UTC, succeeded: "
                                 "3 created, 5 updated.")
    assert not unpaid.locked and unpaid.availability == "Available now." and unpaid.last_run == "Not run yet."
    later = {s.kind: s for s in syncs.manual_fetch_states(engine, CS, partner_id, now=NOW + timedelta(minutes=40))}
    assert not later["fetch_new_data"].locked


def test_countdown_rounds_up_so_it_never_reads_zero_while_locked():
    assert syncs.countdown(timedelta(milliseconds=1)) == "0:00:01"
    assert syncs.countdown(timedelta(hours=11, minutes=59, seconds=59)) == "11:59:59"


def test_chart_data_counts_runs_per_day_and_status_in_sql(engine, two_partners):
    data = syncs.chart_data(engine, CS, two_partners[0])
    assert data.daily["runs"].sum() == 5
    assert data.daily.loc[data.daily["status"] == "failed", "runs"].tolist() == [1]
    assert len(data.per_run) == 5 and data.per_run["started_at"].is_monotonic_increasing
    assert set(data.per_run["duration_s"]) == {120.0}
    limited = syncs.chart_data(engine, CS, two_partners[0], run_limit=2,
                                 filters=syncs.RunFilter(statuses=("succeeded",)))
    assert len(limited.per_run) == 2 and set(limited.per_run["status"]) == {"succeeded"}


def _result(status, *, error=None, rejected=0, refunded=False):
    return RunResult(run_id=9, kind="fetch_unpaid", status=status, error=error, cooldown_refunded=refunded,
                     tally=RunCounters(created=2, updated=3, unchanged=4, rejected=rejected))


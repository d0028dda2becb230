import re
from datetime import date, timedelta

import pandas as pd
import pytest

from core.access import Principal
from core.actions import fetches
from core.console import syncs
from core.console.audience import Audience
from core.errors import AccessDenied, CooldownActive, NotFound, SyncAlreadyQueued
from core.halopsa.records import RecordError
from core.store.tables import IntegrationRole, Lane, Role, RunKind, RunStatus
from core.store.users import add_user
from core.sync import jobs, runs
from tests.support.clock import NOW
from tests.support.factories import add_partner

CS = Principal(role=Role.CS, user="cs@example.com")
PM = Principal(role=Role.PM, user="pm@example.com")


def _run(engine, settings, partner_id, *, at, kind=RunKind.SCHEDULED, status=RunStatus.SUCCEEDED, created=0,
         updated=0, minutes=2, manual=False, actor="scheduler", errors=(), seen=0):
    run_id = runs.start_run(engine, partner_id=partner_id, partner_name="p", kind=kind,
                            trigger="manual" if manual else "schedule", actor=actor, now=at, settings=settings,
                            claim_cooldown=manual)
    with engine.begin() as conn:
        runs.save_progress(conn, run_id, partner_id, now=at, created=created, updated=updated, rejected=len(errors),
                           invoices_seen=seen)
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


def test_run_detail_groups_record_errors_by_reason_with_an_example_and_its_halopsa_id(engine, settings, two_partners):
    acme, globex = two_partners
    errors = [RecordError("invoice", None, "expected an amount, got 'n/a'", {"total": "n/a"}),
              RecordError("invoice", 7, "expected an amount, got 'abc'", {"id": 7, "total": "abc"}),
              RecordError("invoice", 8, "expected an amount, got 'x'", {"id": 8, "total": "x"}),
              RecordError("customer", 3, "customer has no name", {"id": 3, "name": None})]
    run_id = _run(engine, settings, acme, at=NOW - timedelta(minutes=30), status=RunStatus.PARTIAL, errors=errors,
                  seen=40)
    detail = syncs.run_detail(engine, CS, acme, run_id)
    assert detail.errors_total == 4 and detail.counts["Rejected"] == 4
    groups = detail.error_groups
    assert list(groups.columns) == syncs.ERROR_GROUP_COLUMNS
    assert groups.to_dict("records") == [
        {"Record": "Invoice", "Reason": "expected an amount, got …", "Records": 3, "Example HaloPSA ID": "7",
         "Example as HaloPSA sent it": "{'id': 7, 'total': 'abc'}"},
        {"Record": "Customer", "Reason": "customer has no name", "Records": 1, "Example HaloPSA ID": "3",
         "Example as HaloPSA sent it": "{'id': 3, 'name': None}"}]
    assert detail.records_note.startswith("4 records could not be read and were left out; grouped by reason")
    assert f"run #{run_id}" in detail.headline and "partial" in detail.headline
    with pytest.raises(NotFound):
        syncs.run_detail(engine, CS, globex, run_id)


def test_a_group_whose_records_have_no_id_says_so():
    assert syncs.reason_pattern("amount 1e+400 is not a finite number") == "amount … is not a finite number"
    assert syncs.reason_pattern("amounts must fit in 64-bit cents") == "amounts must fit in 64-bit cents"


@pytest.mark.parametrize(("status", "seen", "note"), [
    (RunStatus.FAILED, 0, "The run stopped before it read any record."),
    (RunStatus.RATE_LIMITED, 0, "The run stopped before it read any record."),
    (RunStatus.FAILED, 250, "The run stopped after reading 250 records, none rejected; what it had not read yet is "
                            "read by the next sync."),
    (RunStatus.RUNNING, 0, "Still running: no records read yet."),
    (RunStatus.RUNNING, 1, "Still running: 1 record read so far, none rejected."),
    (RunStatus.SUCCEEDED, 0, "HaloPSA had nothing new or changed for this run."),
    (RunStatus.SUCCEEDED, 1200, "All 1,200 records this run read were stored or already up to date."),
])
def test_run_detail_says_only_what_is_true_of_the_records_a_run_read(engine, settings, two_partners, status, seen,
                                                                     note):
    """It said "Every record in this run was read." under a failed or running run that had read nothing."""
    run_id = _run(engine, settings, two_partners[0], at=NOW - timedelta(minutes=5), status=status, seen=seen)
    detail = syncs.run_detail(engine, CS, two_partners[0], run_id)
    assert detail.records_note == note and detail.error_groups.empty


def test_run_detail_counts_requests_with_their_retries_for_cs_and_in_plain_words_for_the_partner(engine, settings,
                                                                                                  two_partners):
    acme = two_partners[0]
    run_id = _run(engine, settings, acme, at=NOW - timedelta(minutes=5), status=RunStatus.FAILED)
    with engine.begin() as conn:
        runs.save_progress(conn, run_id, acme, now=NOW, requests=3, error="HaloPSA is rate limiting this tenant.")
    cs_view = syncs.run_detail(engine, CS, acme, run_id)
    assert "(schedule) started 2026-11-02 11:55:00 UTC by scheduler, took 120 s" in cs_view.headline
    assert "; 3 requests (retries included), 0 pages, " in cs_view.headline
    assert list(cs_view.counts) == ["Created", "Updated", "Unchanged", "Rejected"]
    own = Principal(role=Role.PARTNER, user="ap@acme.example", partner_id=acme)
    partner_view = syncs.run_detail(engine, own, acme, run_id)
    assert "started 2026-11-02 11:55:00 UTC automatically, took 120 s" in partner_view.headline
    assert "; 3 calls to HaloPSA; " in partner_view.headline
    assert not re.search(r"schedul|request|tenant|\bpages?\b", partner_view.headline + partner_view.error)
    assert list(partner_view.counts) == ["Created", "Updated", "Already up to date", "Could not be read"]


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


def test_charts_aggregate_per_utc_day_in_sql_records_and_duration_percentiles(engine, settings):
    partner_id = add_partner(engine, settings, now=NOW - timedelta(days=5))
    for minutes, created, rejected in ((2, 5, 0), (4, 1, 2), (40, 0, 0)):  # three runs on 2026-11-01
        _run(engine, settings, partner_id, at=NOW - timedelta(days=1, hours=minutes / 10), minutes=minutes,
             created=created, errors=[RecordError("invoice", n, "bad", {}) for n in range(rejected)])
    _run(engine, settings, partner_id, at=NOW - timedelta(minutes=10), minutes=1, updated=7,
         status=RunStatus.FAILED)
    _run(engine, settings, partner_id, at=NOW - timedelta(minutes=1), status=RunStatus.RUNNING)
    data = syncs.chart_data(engine, CS, partner_id)
    assert data.empty is None
    assert data.daily.to_dict("list") == {
        "day": list(pd.to_datetime(["2026-11-01", "2026-11-02", "2026-11-02"])),
        "status": ["succeeded", "failed", "running"], "runs": [3, 1, 1]}
    assert data.records.to_dict("list") == {"day": list(pd.to_datetime(["2026-11-01", "2026-11-02"])),
                                            "created": [6, 0], "updated": [0, 7], "rejected": [2, 0]}
    durations = data.durations.set_index("day")
    assert durations.loc["2026-11-01", "p50_s"] == 240.0 and durations.loc["2026-11-01", "runs"] == 3
    assert durations.loc["2026-11-01", "p95_s"] == 2184.0  # 90 % of the way from 4 to 40 minutes
    assert durations.loc["2026-11-02"].to_dict() == {"p50_s": 60.0, "p95_s": 60.0, "runs": 1}  # running: not yet
    assert data.scope == ("Runs started 2026-10-04 to 2026-11-02 (UTC): the last 30 days up to the latest run; pick "
                          "dates to see others.")


def test_charts_cover_the_picked_days_and_say_which_filters_are_set(engine, settings, two_partners):
    acme = two_partners[0]
    picked = syncs.chart_data(engine, CS, acme, filters=syncs.RunFilter(statuses=("failed",), start=date(2026, 10, 1),
                                                                         end=date(2026, 11, 2)))
    assert picked.daily["runs"].sum() == 1
    assert picked.scope == "Runs started 2026-10-01 to 2026-11-02 (UTC); status Failed."
    old = syncs.chart_data(engine, CS, acme, filters=syncs.RunFilter(start=date(2025, 1, 1), end=date(2025, 1, 1)))
    assert old.empty == "No runs match the filters (started on 2025-01-01 (UTC))."
    none = syncs.chart_data(engine, CS, acme, filters=syncs.RunFilter(kinds=("backfill",)))
    assert none.empty == "No runs match the filters (kind Backfill)."


def test_charts_of_a_partner_without_runs_do_not_blame_filters_that_were_not_set(engine, settings):
    partner_id = add_partner(engine, settings, now=NOW)
    data = syncs.chart_data(engine, CS, partner_id)
    assert data.empty == "No runs yet: this partner has not synced." and "filter" not in data.empty
    assert data.daily.empty and data.records.empty and data.durations.empty


def test_a_partner_user_sees_customer_success_and_automatic_instead_of_addresses_and_internal_words(engine,
                                                                                                    settings):
    partner_id = add_partner(engine, settings, now=NOW - timedelta(days=2))
    add_user(engine, email="ap@acme.example", name="AP", role=Role.PARTNER, password="pw-123456789",
             partner_id=partner_id)
    _run(engine, settings, partner_id, at=NOW - timedelta(hours=3), actor="scheduler")
    _run(engine, settings, partner_id, at=NOW - timedelta(hours=2), kind=RunKind.FETCH_NEW_DATA, manual=True,
         actor="ap@acme.example")
    _run(engine, settings, partner_id, at=NOW - timedelta(minutes=20), kind=RunKind.FETCH_NEW_DATA, manual=True,
         actor="cs@example.com", created=3, updated=5)
    own = Principal(role=Role.PARTNER, user="ap@acme.example", partner_id=partner_id)
    rows = syncs.runs_page(engine, own, partner_id).rows
    assert list(rows.columns) == syncs.run_columns(own.role) == [
        "Run", "Kind", "Status", "Started (UTC)", "Duration (s)", "Created", "Updated", "Already up to date",
        "Could not be read", "Started by", "Calls to HaloPSA", "Error"]
    assert list(rows["Started by"]) == ["Customer success", "ap@acme.example", "Automatic"]
    assert list(syncs.runs_page(engine, CS, partner_id).rows["By"]) == [
        "cs@example.com", "ap@acme.example", "scheduler"]
    new_data = syncs.manual_fetch_states(engine, own, partner_id, now=NOW)[0]
    assert new_data.on_their_behalf and "cs@" not in new_data.last_run
    assert new_data.last_run == ("Last run by Customer success on your behalf at 2026-11-02 11:40:00 UTC, "
                                 "succeeded: 3 created, 5 updated.")


def test_plain_words_keep_the_permission_to_tick_beside_what_it_is_for():
    partner = Audience(partner_view=True)
    said = partner.words("HaloPSA is rate limiting this tenant; the scheduler retries. The API application lacks: "
                         "edit:invoices.")
    assert said == ("HaloPSA is rate limiting your HaloPSA; the automatic sync retries. The API application lacks: "
                    "edit:invoices (the permission that records payments against invoices).")
    assert Audience(partner_view=False).words("this tenant") == "this tenant"


@pytest.mark.parametrize("viewer", ["cs", "partner"])
def test_a_refused_press_says_what_will_happen_instead_of_try_again_later(engine, settings, viewer):
    """A press refused because the same fetch is queued said "wait for it to finish, then try again", though its
    cooldown would refuse that too."""
    partner_id = add_partner(engine, settings, now=NOW - timedelta(days=2))
    own = Principal(role=Role.PARTNER, user="ap@acme.example", partner_id=partner_id)
    add_user(engine, email=own.user, name="AP", role=Role.PARTNER, password="pw-123456789", partner_id=partner_id)
    _run(engine, settings, partner_id, at=NOW - timedelta(minutes=50), actor="scheduler")
    fetches.request_manual_fetch(engine, CS, partner_id=partner_id, kind=RunKind.FETCH_NEW_DATA,
                                 now=NOW - timedelta(minutes=1), settings=settings)
    reader = CS if viewer == "cs" else own
    with pytest.raises(SyncAlreadyQueued) as queued:
        fetches.request_manual_fetch(engine, reader, partner_id=partner_id, kind=RunKind.FETCH_NEW_DATA, now=NOW,
                                     settings=settings)
    said = syncs.press_refused(engine, reader, partner_id, kind=RunKind.FETCH_NEW_DATA, error=queued.value, now=NOW,
                               schedule_interval=timedelta(hours=1))
    who = "by cs@example.com" if viewer == "cs" else "by Customer success on your behalf"
    assert said == (f"Fetch new data is already queued (pressed {who} at 2026-11-02 11:59:00 UTC): watch it below, "
                    "nothing more is needed. The next one can start in 59 min, at 2026-11-02 12:59:00 UTC. The next "
                    "automatic sync runs at about 12:10 UTC.")
    assert "try again" not in said


def test_a_press_refused_by_the_cooldown_says_when_and_who_used_it(engine, settings):
    partner_id = add_partner(engine, settings, now=NOW - timedelta(days=2))
    _run(engine, settings, partner_id, at=NOW - timedelta(minutes=20), kind=RunKind.FETCH_NEW_DATA, manual=True,
         actor="cs@example.com")
    own = Principal(role=Role.PARTNER, user="ap@acme.example", partner_id=partner_id)
    with pytest.raises(CooldownActive) as cooling:
        fetches.request_manual_fetch(engine, own, partner_id=partner_id, kind=RunKind.FETCH_NEW_DATA, now=NOW,
                                     settings=settings)
    said = syncs.press_refused(engine, own, partner_id, kind=RunKind.FETCH_NEW_DATA, error=cooling.value, now=NOW,
                               schedule_interval=timedelta(hours=1))
    assert said == ("Fetch new data was already run by Customer success on your behalf at 2026-11-02 11:40:00 UTC. "
                    "The next one can start in 40 min, at 2026-11-02 12:40:00 UTC. The next automatic sync runs at "
                    "about 12:40 UTC.")


def test_job_run_follows_a_queued_job_to_the_run_it_starts(engine, settings):
    partner_id = add_partner(engine, settings, now=NOW - timedelta(days=2))
    job_id = fetches.request_manual_fetch(engine, CS, partner_id=partner_id, kind=RunKind.FETCH_UNPAID, now=NOW,
                                          settings=settings)
    assert syncs.job_run(engine, CS, partner_id, job_id) == (None, True)
    other = add_partner(engine, settings, name="Other", now=NOW)
    assert syncs.job_run(engine, CS, other, job_id) == (None, False)  # another partner's job is not followed
    [job] = jobs.claim(engine, owner="w", lane=Lane.LONG, limit=1, lease=timedelta(seconds=60))
    run_id = runs.start_run(engine, partner_id=partner_id, partner_name="p", kind=RunKind.FETCH_UNPAID,
                            trigger="manual", actor=CS.user, now=NOW, settings=settings, job_id=job.id)
    assert syncs.job_run(engine, CS, partner_id, job_id) == (run_id, True)


def test_a_reconciliations_run_detail_says_it_compared_and_stored_nothing(engine, settings, two_partners):
    run_id = _run(engine, settings, two_partners[0], at=NOW - timedelta(minutes=5), kind=RunKind.RECONCILE, seen=1200)
    detail = syncs.run_detail(engine, CS, two_partners[0], run_id)
    assert detail.records_note == ("A reconciliation stores nothing: the 1,200 records it read were compared with the "
                                   "stored ones; what differs is under Reconciliation with HaloPSA.")

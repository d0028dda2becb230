from datetime import timedelta

import pytest
from sqlalchemy import select, update

from core.access import Principal
from core.actions import issues as issue_actions
from core.console import overview as overview_screen
from core.health import issues
from core.store.tables import (
    CONNECTION_TABLE,
    ISSUE_EVENT_TABLE,
    ISSUE_TABLE,
    DriftKind,
    IssueChange,
    IssueOwner,
    IssueSeverity,
    IssueType,
    Role,
    RunKind,
    RunStatus,
)
from core.sync import worker_presence
from tests.support.clock import NOW
from tests.support.factories import add_agreements, add_partner, add_reconciliation, add_run, add_stuck_job

CS = Principal(role=Role.CS, user="cs@example.com")
HOUR = timedelta(hours=1)


def _partner(engine, settings, name="Acme MSP"):
    """Connected five days ago, its latest run a clean success five hours ago: no issue at all."""
    partner_id = add_partner(engine, settings, name=name, now=NOW - timedelta(days=5))
    add_run(engine, settings, partner_id, at=NOW - 5 * HOUR)
    return partner_id


def _evaluate(engine, settings, at=NOW):
    return issues.evaluate(engine, now=at, settings=settings)


def _issues(engine):
    with engine.connect() as conn:
        return {(row.partner_id, IssueType(row.type)): row for row in conn.execute(select(ISSUE_TABLE))}


def _events(engine):
    with engine.connect() as conn:
        return [(row.partner_id, IssueType(row.type), IssueChange(row.change), IssueSeverity(row.severity))
                for row in conn.execute(select(ISSUE_EVENT_TABLE).order_by(ISSUE_EVENT_TABLE.c.id))]


def _missing_scopes(engine, partner_id):
    with engine.begin() as conn:
        conn.execute(update(CONNECTION_TABLE).where(CONNECTION_TABLE.c.partner_id == partner_id)
                     .values(missing_scopes="read:contracts edit:contracts"))


SCENARIOS = {
    IssueType.AUTH_FAILED: lambda e, s, p: add_run(e, s, p, at=NOW - HOUR, status=RunStatus.FAILED, error_kind="auth",
                                                   error="HaloPSA rejected the Client ID or Client Secret."),
    IssueType.PERMISSIONS_MISSING: lambda e, s, p: _missing_scopes(e, p),
    IssueType.FAILING_RUNS: lambda e, s, p: add_run(e, s, p, at=NOW - HOUR, status=RunStatus.FAILED,
                                                    error_kind="unavailable", error="HaloPSA did not answer."),
    IssueType.RATE_LIMITED: lambda e, s, p: [add_run(e, s, p, at=NOW - hours * HOUR, status=RunStatus.RATE_LIMITED)
                                             for hours in (3, 2, 1)],
    IssueType.RECORD_ERRORS: lambda e, s, p: add_run(e, s, p, at=NOW - HOUR, status=RunStatus.PARTIAL,
                                                     record_errors=2),
    IssueType.SUBTYPE_UNMAPPED: lambda e, s, p: add_agreements(e, p, ["Backup", "Managed Services"], now=NOW),
    IssueType.STALE_CLOCK: lambda e, s, p: add_run(e, s, p, at=NOW + HOUR),
    IssueType.WORKER_DOWN: lambda e, s, p: add_stuck_job(e, p),
    IssueType.DRIFT: lambda e, s, p: add_reconciliation(e, p, at=NOW - HOUR, drift={7: DriftKind.EXTRA_HERE}),
}


def test_drift_resolves_once_a_later_reconciliation_finds_none(engine, settings):
    partner_id = _partner(engine, settings)
    add_reconciliation(engine, partner_id, at=NOW - 2 * HOUR, drift={7: DriftKind.EXTRA_HERE,
                                                                     8: DriftKind.AMOUNT_DIFFERS})
    [opened] = _evaluate(engine, settings)
    assert opened.type == IssueType.DRIFT and "2 invoices" in opened.detail and "1 extra here" in opened.detail
    add_reconciliation(engine, partner_id, at=NOW - HOUR, drift={9: DriftKind.OUTSIDE_SCOPE})  # not drift
    clean = issues.ISSUE_KINDS[IssueType.DRIFT].clean_period
    assert _evaluate(engine, settings) == []  # not seen now, resolved after its clean period
    [resolved] = issues.evaluate(engine, now=NOW + clean, settings=settings)
    assert (resolved.type, resolved.change) == (IssueType.DRIFT, IssueChange.RESOLVED)


def test_a_healthy_partner_has_no_issue(engine, settings):
    _partner(engine, settings)
    assert _evaluate(engine, settings) == [] and _issues(engine) == {}


@pytest.mark.parametrize("issue_type", list(SCENARIOS))
def test_each_type_opens_on_its_problem(engine, settings, issue_type):
    partner_id = _partner(engine, settings)
    SCENARIOS[issue_type](engine, settings, partner_id)
    changes = _evaluate(engine, settings)
    owner = None if issue_type == IssueType.WORKER_DOWN else partner_id
    assert [(c.partner_id, c.type, c.change) for c in changes] == [(owner, issue_type, IssueChange.OPENED)]
    row = _issues(engine)[owner, issue_type]
    kind = issues.ISSUE_KINDS[issue_type]
    assert (row.severity, row.owner, row.first_seen, row.last_seen) == (kind.severity, kind.owner, NOW, NOW)
    assert row.detail and row.resolved_at is None and row.reopened == 0
    assert _events(engine) == [(owner, issue_type, IssueChange.OPENED, kind.severity)]


def test_no_success_for_a_day_opens_and_a_never_synced_partner_after_its_first_day(engine, settings):
    stale = add_partner(engine, settings, name="Stale", now=NOW - timedelta(days=5))
    add_run(engine, settings, stale, at=NOW - 30 * HOUR)
    fresh = add_partner(engine, settings, name="Fresh", now=NOW - 2 * HOUR)
    forgotten = add_partner(engine, settings, name="Forgotten", now=NOW - 25 * HOUR)
    _evaluate(engine, settings)
    found = _issues(engine)
    assert set(found) == {(stale, IssueType.NO_RECENT_SUCCESS), (forgotten, IssueType.NO_RECENT_SUCCESS)}
    assert found[forgotten, IssueType.NO_RECENT_SUCCESS].detail.endswith("never synced.")
    assert fresh not in {partner_id for partner_id, _ in found}


@pytest.mark.parametrize("kind", [RunKind.RECONCILE, RunKind.RESYNC, RunKind.PROBE, RunKind.RENUMBER])
def test_a_run_that_brings_no_data_is_no_successful_sync(engine, settings, kind):
    """A reconciliation (or a probe, a resync, a renumbering) that succeeded an hour ago hid a day without a successful
    sync, and its failure would have counted as the partner's latest sync failing."""
    partner_id = add_partner(engine, settings, name="Stale", now=NOW - timedelta(days=5))
    add_run(engine, settings, partner_id, at=NOW - 30 * HOUR)
    add_run(engine, settings, partner_id, at=NOW - 2 * HOUR, status=RunStatus.FAILED, error="HaloPSA did not answer.")
    add_run(engine, settings, partner_id, at=NOW - HOUR, kind=kind, trigger="request")
    _evaluate(engine, settings)
    found = _issues(engine)
    assert set(found) == {(partner_id, IssueType.FAILING_RUNS)}  # the latest sync failed, 30 h after the last success
    assert found[partner_id, IssueType.FAILING_RUNS].severity == IssueSeverity.CRITICAL


def test_a_live_worker_means_no_worker_down(engine, settings):
    add_stuck_job(engine, _partner(engine, settings))
    worker_presence.beat(engine, "worker-1")
    assert _evaluate(engine, settings) == []


def test_failing_runs_escalate_to_critical_after_a_day_without_success(engine, settings):
    partner_id = add_partner(engine, settings, now=NOW - timedelta(days=5))
    add_run(engine, settings, partner_id, at=NOW - 23 * HOUR)
    add_run(engine, settings, partner_id, at=NOW - HOUR, status=RunStatus.FAILED, error="HaloPSA did not answer.")
    [opened] = _evaluate(engine, settings)
    assert opened.severity == IssueSeverity.HIGH
    assert _evaluate(engine, settings, NOW + HOUR / 2) == []  # 23.5 h down: still high
    [escalated] = _evaluate(engine, settings, NOW + 2 * HOUR)
    assert (escalated.change, escalated.severity) == (IssueChange.ESCALATED, IssueSeverity.CRITICAL)
    assert _evaluate(engine, settings, NOW + 3 * HOUR) == []  # escalated once
    row = _issues(engine)[partner_id, IssueType.FAILING_RUNS]
    assert (row.severity, row.first_seen, row.last_seen) == (IssueSeverity.CRITICAL, NOW, NOW + 3 * HOUR)


def _record_errors_resolved(engine, settings):
    """Record errors opened at NOW, a clean run an hour later: returns the partner."""
    partner_id = _partner(engine, settings)
    add_run(engine, settings, partner_id, at=NOW - HOUR, status=RunStatus.PARTIAL, record_errors=2)
    _evaluate(engine, settings)
    add_run(engine, settings, partner_id, at=NOW + HOUR)
    return partner_id


def test_an_issue_resolves_after_its_clean_period_and_not_before(engine, settings):
    partner_id = _record_errors_resolved(engine, settings)
    clean = issues.ISSUE_KINDS[IssueType.RECORD_ERRORS].clean_period
    assert _evaluate(engine, settings, NOW + 2 * HOUR) == []
    assert _evaluate(engine, settings, NOW + clean - timedelta(seconds=1)) == []
    [resolved] = _evaluate(engine, settings, NOW + clean)
    assert (resolved.partner_id, resolved.change) == (partner_id, IssueChange.RESOLVED)
    assert _issues(engine)[partner_id, IssueType.RECORD_ERRORS].resolved_at == NOW + clean
    assert _evaluate(engine, settings, NOW + clean + HOUR) == []


def test_a_resolved_issue_reopens_in_place_when_the_problem_comes_back(engine, settings):
    partner_id = _record_errors_resolved(engine, settings)
    later = NOW + timedelta(days=2)
    _evaluate(engine, settings, later)
    add_run(engine, settings, partner_id, at=later, status=RunStatus.PARTIAL, record_errors=1)
    [reopened] = _evaluate(engine, settings, later + HOUR)
    assert reopened.change == IssueChange.REOPENED
    row = _issues(engine)[partner_id, IssueType.RECORD_ERRORS]
    assert (row.first_seen, row.last_seen, row.resolved_at, row.reopened) == (NOW, later + HOUR, None, 1)
    assert [change for _, kind, change, _ in _events(engine) if kind == IssueType.RECORD_ERRORS] == [
        IssueChange.OPENED, IssueChange.RESOLVED, IssueChange.REOPENED]


def test_a_snoozed_issue_is_listed_after_the_others_until_its_snooze_ends(engine, settings):
    first = _partner(engine, settings, "Acme MSP")
    second = _partner(engine, settings, "Beta IT")
    SCENARIOS[IssueType.FAILING_RUNS](engine, settings, first)
    SCENARIOS[IssueType.RECORD_ERRORS](engine, settings, second)
    _evaluate(engine, settings)
    failing = _issues(engine)[first, IssueType.FAILING_RUNS].id
    issue_actions.snooze(engine, CS, failing, NOW + 2 * HOUR, "HaloPSA maintenance tonight", now=NOW)
    listed = overview_screen.issues(engine, CS, now=NOW + HOUR)
    assert list(listed["type"]) == ["Record errors", "Failing runs"]
    assert listed.iloc[1]["snoozed"] == ("snoozed until 2026-11-02 14:00 UTC: HaloPSA maintenance tonight "
                                         "(by cs@example.com)")
    _evaluate(engine, settings, NOW + HOUR)  # still failing while snoozed: stays open, snooze kept
    back = overview_screen.issues(engine, CS, now=NOW + 2 * HOUR)
    assert list(back["type"]) == ["Failing runs", "Record errors"] and set(back["snoozed"]) == {""}


@pytest.mark.parametrize("step", ["open", "escalate", "resolve", "reopen", "open the fleet's"])
def test_two_evaluators_at_once_write_one_event_per_change(engine, settings, monkeypatch, step):
    """The second evaluator reads the same state as the first, then the first writes its changes before the second
    writes: the second's writes find the rows changed and write no event."""
    partner_id = add_partner(engine, settings, now=NOW - timedelta(days=5))
    add_run(engine, settings, partner_id, at=NOW - 23 * HOUR)
    at = NOW
    if step == "open the fleet's":
        add_stuck_job(engine, partner_id)
    else:
        add_run(engine, settings, partner_id, at=NOW - HOUR, status=RunStatus.FAILED, error="down")
    if step in ("escalate", "resolve", "reopen"):
        _evaluate(engine, settings)
        at = NOW + 2 * HOUR
    if step in ("resolve", "reopen"):
        add_run(engine, settings, partner_id, at=NOW + HOUR)
        at = NOW + 5 * HOUR
    if step == "reopen":
        _evaluate(engine, settings, at)
        add_run(engine, settings, partner_id, at=at, status=RunStatus.FAILED, error="down")
        at += HOUR
    before = len(_events(engine))
    read = issues._read
    first_changes = []

    def read_then_let_the_other_write(engine_, *, now):
        state = read(engine_, now=now)
        monkeypatch.setattr(issues, "_read", read)
        first_changes.extend(issues.evaluate(engine, now=now, settings=settings))
        return state

    monkeypatch.setattr(issues, "_read", read_then_let_the_other_write)
    second_changes = _evaluate(engine, settings, at)
    assert len(first_changes) == 1 and second_changes == []
    assert len(_events(engine)) == before + 1
    assert len(_issues(engine)) == 1


def test_the_legend_states_every_type_once_with_its_clean_period():
    legend = overview_screen.issue_types()
    assert list(legend["type"]) == [kind.label for kind in issues.ISSUE_KINDS.values()]
    assert set(issues.ISSUE_KINDS) == set(IssueType)
    failing = legend.set_index("type").loc["Failing runs"]
    assert (failing["severity"], failing["escalates"], failing["owner"], failing["resolves_after"],
            failing["fixed_on"]) == ("high", "critical after 24 h without a success", "HaloPSA side", "3 h clean",
                                     "Syncs")
    assert issues.ISSUE_KINDS[IssueType.WORKER_DOWN].owner == IssueOwner.OURS

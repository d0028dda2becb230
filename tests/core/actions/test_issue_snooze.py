from datetime import timedelta

import pytest
from sqlalchemy import select

from core.access import Principal
from core.actions import issues as issue_actions
from core.errors import AccessDenied, BadInput, NotFound
from core.health import issues
from core.limits import max_chars
from core.store.tables import AUDIT_TABLE, ISSUE_TABLE, AuditAction, Role, RunStatus
from tests.support.clock import NOW
from tests.support.factories import add_partner, add_run

CS = Principal(role=Role.CS, user="cs@example.com")
HOUR = timedelta(hours=1)


@pytest.fixture
def issue_id(engine, settings):
    partner_id = add_partner(engine, settings, now=NOW - timedelta(days=5))
    add_run(engine, settings, partner_id, at=NOW - HOUR, status=RunStatus.FAILED, error="down")
    [opened] = issues.evaluate(engine, now=NOW, settings=settings)
    return opened.issue_id


def _row(engine, issue_id):
    with engine.connect() as conn:
        return conn.execute(select(ISSUE_TABLE).where(ISSUE_TABLE.c.id == issue_id)).one()


def _audit(engine):
    with engine.connect() as conn:
        return [(row.actor, row.action, row.detail) for row in conn.execute(select(AUDIT_TABLE))]


def test_snooze_keeps_until_reason_and_who_and_is_audited(engine, issue_id):
    issue_actions.snooze(engine, CS, issue_id, NOW + timedelta(days=2), "  Partner on holiday  ", now=NOW)
    row = _row(engine, issue_id)
    assert (row.snoozed_until, row.snooze_reason, row.snoozed_by) == (NOW + timedelta(days=2), "Partner on holiday",
                                                                      "cs@example.com")
    assert _audit(engine)[-1] == ("cs@example.com", AuditAction.SNOOZE_ISSUE,
                                  "Failing runs snoozed until 2026-11-04 12:00 UTC: Partner on holiday")
    issue_actions.unsnooze(engine, CS, issue_id, now=NOW + HOUR)
    row = _row(engine, issue_id)
    assert (row.snoozed_until, row.snooze_reason, row.snoozed_by) == (None, None, None)
    assert _audit(engine)[-1][1:] == (AuditAction.UNSNOOZE_ISSUE, "Failing runs snooze ended early")


@pytest.mark.parametrize(("until", "reason", "message"), [
    (NOW + HOUR, "   ", "Say why the issue can wait"),
    (NOW + HOUR, "x" * (max_chars("snooze_reason") + 1), "Reason must be 300 characters or fewer"),
    (NOW + HOUR, "two\nlines", "control character"),
    (NOW, "later", "Pick an end after now"),
    (NOW - HOUR, "later", "Pick an end after now"),
    (NOW + timedelta(days=30, seconds=1), "later", "A snooze lasts at most 30 days"),
])
def test_a_bad_snooze_is_refused_with_what_to_do_and_changes_nothing(engine, issue_id, until, reason, message):
    with pytest.raises(BadInput, match=message):
        issue_actions.snooze(engine, CS, issue_id, until, reason, now=NOW)
    assert _row(engine, issue_id).snoozed_until is None and _audit(engine) == []


def test_thirty_days_is_the_longest_snooze(engine, issue_id):
    issue_actions.snooze(engine, CS, issue_id, NOW + timedelta(days=30), "contract renewal", now=NOW)
    assert _row(engine, issue_id).snoozed_until == NOW + timedelta(days=30)


def test_a_missing_or_resolved_issue_cannot_be_snoozed(engine, settings, issue_id):
    with pytest.raises(NotFound, match="no longer exists"):
        issue_actions.snooze(engine, CS, 999, NOW + HOUR, "why", now=NOW)
    add_run(engine, settings, _row(engine, issue_id).partner_id, at=NOW)
    clean = issues.ISSUE_KINDS[issues.IssueType.FAILING_RUNS].clean_period
    issues.evaluate(engine, now=NOW + clean, settings=settings)
    with pytest.raises(BadInput, match="resolved at .*nothing to snooze"):
        issue_actions.snooze(engine, CS, issue_id, NOW + clean + HOUR, "why", now=NOW + clean)


def test_unsnoozing_an_issue_that_is_not_snoozed_says_so(engine, issue_id):
    with pytest.raises(BadInput, match="not snoozed"):
        issue_actions.unsnooze(engine, CS, issue_id, now=NOW)
    issue_actions.snooze(engine, CS, issue_id, NOW + HOUR, "why", now=NOW)
    with pytest.raises(BadInput, match="not snoozed"):  # its snooze ended by itself
        issue_actions.unsnooze(engine, CS, issue_id, now=NOW + HOUR)


@pytest.mark.parametrize("principal", [Principal(role=Role.PARTNER, user="ap@acme.example", partner_id=1),
                                       Principal(role=Role.PM, user="pm@example.com")])
def test_only_customer_success_snoozes(engine, issue_id, principal):
    with pytest.raises(AccessDenied):
        issue_actions.snooze(engine, principal, issue_id, NOW + HOUR, "why", now=NOW)
    with pytest.raises(AccessDenied):
        issue_actions.unsnooze(engine, principal, issue_id, now=NOW)
    assert _row(engine, issue_id).snoozed_until is None and _audit(engine) == []

from datetime import date, timedelta

import pytest

from core.access import Principal
from core.console import audit_log
from core.errors import AccessDenied, BadInput
from core.store import audit
from core.store.tables import Role
from tests.support.clock import NOW
from tests.support.factories import add_partner

CS = Principal(role=Role.CS, user="cs@example.com")


@pytest.fixture
def log(engine, settings):
    """Twelve events over twelve days: alternating partners, actors and actions; one without a partner."""
    acme = add_partner(engine, settings, name="Acme MSP", now=NOW)
    globex = add_partner(engine, settings, name="Globex Partners", now=NOW)
    with engine.begin() as conn:
        for day in range(12):
            audit.record(conn, actor=("cs@example.com", "ap@acme.example")[day % 2],
                         action=("manual_fetch", "edit_connection", "export")[day % 3],
                         partner_id=None if day == 11 else (acme, globex)[day % 2],
                         now=NOW - timedelta(days=day), detail=f"event {day}")
    return {"acme": acme, "globex": globex}


def test_events_come_newest_first_with_readable_actions(engine, log):
    frame, total = audit_log.events(engine, CS, limit=3)
    assert total == 12
    assert list(frame.columns) == ["at", "actor", "partner", "action", "detail"]
    assert frame["detail"].tolist() == ["event 0", "event 1", "event 2"]
    assert frame["action"].tolist() == ["Manual fetch", "Edit connection", "Export"]
    assert frame["partner"].tolist() == ["Acme MSP", "Globex Partners", "Acme MSP"]


def test_pages_follow_each_other_without_gaps(engine, log):
    pages = [audit_log.events(engine, CS, limit=5, offset=offset)[0] for offset in (0, 5, 10)]
    assert [len(page) for page in pages] == [5, 5, 2]
    assert [d for page in pages for d in page["detail"]] == [f"event {day}" for day in range(12)]
    assert pages[2]["partner"].tolist()[-1] == "—"
    assert audit_log.page_count(12, 5) == 3 and audit_log.page_count(0, 5) == 1


def test_filters_narrow_the_events_and_the_total(engine, log):
    _, total = audit_log.events(engine, CS, partner_id=log["acme"])
    assert total == 6
    frame, total = audit_log.events(engine, CS, partner_id=log["globex"], action="export", actor="ap@acme.example")
    assert (total, frame["detail"].tolist()) == (1, ["event 5"])


def test_a_day_range_includes_both_whole_days(engine, log):
    since, until = audit_log.day_bounds(date(2026, 10, 29), date(2026, 10, 31))
    frame, total = audit_log.events(engine, CS, since=since, until=until)
    assert frame["detail"].tolist() == ["event 2", "event 3", "event 4"]
    assert total == 3


def test_a_reversed_day_range_is_refused_with_a_hint(engine):
    with pytest.raises(BadInput, match="before"):
        audit_log.day_bounds(date(2026, 11, 2), date(2026, 11, 1))


def test_filter_options_list_the_actions_and_actors_in_the_log(engine, log):
    options = audit_log.filter_options(engine, CS)
    assert options.actions == ["edit_connection", "export", "manual_fetch"]
    assert options.actors == ["ap@acme.example", "cs@example.com"]


@pytest.mark.parametrize("principal", [
    Principal(role=Role.PARTNER, user="ap@acme.example", partner_id=1),
    Principal(role=Role.PM, user="pm@example.com"),
])
def test_only_customer_success_reads_the_audit_log(engine, log, principal):
    with pytest.raises(AccessDenied):
        audit_log.events(engine, principal)
    with pytest.raises(AccessDenied):
        audit_log.filter_options(engine, principal)

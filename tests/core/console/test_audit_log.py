import csv
import io
from datetime import date, timedelta

import pytest
from sqlalchemy import select

from core.access import Principal
from core.console import audit_log, exports
from core.errors import AccessDenied, BadInput, NotFound, Refused
from core.store import audit
from core.store.tables import AUDIT_TABLE, Role
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
    with pytest.raises(AccessDenied):
        audit_log.export_csv(engine, principal, audit_log.Filters(), now=NOW)
    with pytest.raises(AccessDenied):
        audit_log.download_refusal(engine, principal, rows=1, now=NOW)


def _csv(data: bytes) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(data.decode())))


def _exports(engine) -> list:
    with engine.connect() as conn:
        return conn.execute(select(AUDIT_TABLE).where(AUDIT_TABLE.c.action == "export")
                            .order_by(AUDIT_TABLE.c.id)).all()


def test_the_export_holds_every_matching_event_newest_first_and_is_audited(engine, log):
    """Issue 14: the audit log had no export."""
    before = _exports(engine)
    data, rows = audit_log.export_csv(engine, CS, audit_log.Filters(partner_id=log["acme"]), now=NOW)

    lines = _csv(data)
    assert rows == len(lines) == 6 and list(lines[0]) == ["at", "actor", "partner", "action", "detail"]
    assert [line["detail"] for line in lines] == [f"event {day}" for day in (0, 2, 4, 6, 8, 10)]
    assert (lines[0]["at"], lines[0]["partner"], lines[0]["action"]) == ("2026-11-02T12:00:00Z", "Acme MSP",
                                                                        "Manual fetch")
    [event] = _exports(engine)[len(before):]
    assert (event.actor, event.partner_id, event.at) == ("cs@example.com", log["acme"], NOW)
    assert event.detail == ("Audit log CSV: 6 events; filters: partner Acme MSP, action any, actor anyone")
    # the next export of everything holds that export event, and names no partner for it
    data, rows = audit_log.export_csv(engine, CS, audit_log.Filters(action="export"), now=NOW)
    assert [(line["partner"], line["detail"]) for line in _csv(data)][:1] == [("Acme MSP", event.detail)]
    assert _exports(engine)[-1].partner_id is None


def test_the_export_follows_every_filter_and_says_them(engine, log):
    since, until = audit_log.day_bounds(date(2026, 10, 29), date(2026, 10, 31))
    filters = audit_log.Filters(action="export", actor="ap@acme.example", since=since, until=until)

    data, rows = audit_log.export_csv(engine, CS, filters, now=NOW)

    assert (rows, [line["detail"] for line in _csv(data)]) == (0, [])
    assert _exports(engine)[-1].detail == ("Audit log CSV: 0 events; filters: partner any, action Export, actor "
                                           "ap@acme.example, from 2026-10-29 00:00 UTC, before 2026-11-01 00:00 UTC")
    _, total = audit_log.events(engine, CS, actor="ap@acme.example", since=since, until=until)
    data, rows = audit_log.export_csv(engine, CS, audit_log.Filters(actor="ap@acme.example", since=since, until=until),
                                      now=NOW)
    assert rows == total == 1 and _csv(data)[0]["detail"] == "event 3"


def test_outside_text_in_the_export_is_never_a_formula(engine, log):
    with engine.begin() as conn:
        audit.record(conn, actor="cs@example.com", action="connect", partner_id=log["acme"], now=NOW,
                     detail='=HYPERLINK("http://evil.example")')

    data, _ = audit_log.export_csv(engine, CS, audit_log.Filters(action="connect"), now=NOW)

    assert _csv(data)[0]["detail"] == '\'=HYPERLINK("http://evil.example")'


def test_the_export_keeps_the_download_limits(engine, log, monkeypatch):
    monkeypatch.setattr(exports, "MAX_DOWNLOAD_ROWS", 5)
    before = len(_exports(engine))
    assert "at most 5" in (audit_log.download_refusal(engine, CS, rows=6, now=NOW) or "")
    with pytest.raises(Refused, match="Narrow the filters \\(partner, action, actor or dates\\)"):
        audit_log.export_csv(engine, CS, audit_log.Filters(), now=NOW, throttled=True)
    assert len(_exports(engine)) == before  # nothing recorded
    monkeypatch.setattr(exports, "MAX_DOWNLOAD_ROWS", 100)
    for _ in range(exports.DOWNLOADS_PER_WINDOW):
        audit_log.export_csv(engine, CS, audit_log.Filters(), now=NOW, throttled=True)
    assert "Try again in" in (audit_log.download_refusal(engine, CS, rows=1, now=NOW) or "")
    with pytest.raises(Refused, match="Try again in"):
        audit_log.export_csv(engine, CS, audit_log.Filters(), now=NOW, throttled=True)


def test_an_export_of_a_partner_that_is_gone_says_what_to_do(engine, log):
    with pytest.raises(NotFound, match="pick another, or all partners"):
        audit_log.export_csv(engine, CS, audit_log.Filters(partner_id=999), now=NOW)

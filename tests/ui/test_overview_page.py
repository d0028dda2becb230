from datetime import timedelta

import pytest
from sqlalchemy import select

from core.console import overview as overview_screen
from core.store.tables import ISSUE_TABLE, AuditEvent
from tests.support.clock import NOW
from tests.support.factories import add_partner, add_run
from tests.support.markdown import plain_text

PAGE = "pages/overview.py"


def _frame_with(at, column):
    return next(frame.value for frame in at.dataframe if column in frame.value.columns)


def _metrics(at):
    return {metric.label: metric.value for metric in at.metric}


def test_overview_lists_every_partner_the_tiles_and_the_issues_for_customer_success(app_as):
    at = app_as("cs").switch_page(PAGE).run()
    assert not at.exception
    assert at.title[0].value == "Partner overview"
    table = _frame_with(at, "freshness").set_index("partner")
    assert list(table.index) == ["Acme MSP", "Globex Partners"]
    assert table["freshness"].to_dict() == {"Acme MSP": "on time", "Globex Partners": "not syncing"}
    assert table.loc["Acme MSP", "fetch_unpaid"] == "available now"
    assert _metrics(at) == {"Partners": "2", "On time": "1", "Late": "0", "Failing": "0",
                            "Not syncing by design": "1", "Never synced": "0"}
    worklist = _frame_with(at, "next_step")
    assert set(worklist["partner"]) == {"Acme MSP", "Globex Partners"}
    assert set(worklist["type"]) == {"Subtype unmapped"}
    assert set(worklist["link"]) == {f"/agreements?partner={pid}" for pid in worklist["partner_id"]}
    assert [subheader.value for subheader in at.subheader][:1] == ["Issues (2 open)"]


def test_the_tiles_add_up_to_the_fleet_and_last_success_is_never_a_raw_none(app_as, engine, settings):
    add_partner(engine, settings, name="New Co", now=NOW - timedelta(hours=2))
    broken = add_partner(engine, settings, name="Broken Bits", now=NOW - timedelta(days=3))
    add_run(engine, settings, broken, at=NOW - timedelta(hours=30))
    add_run(engine, settings, broken, at=NOW - timedelta(hours=1), status="failed", error="down")
    at = app_as("cs").switch_page(PAGE).run()
    metrics = {label: int(value) for label, value in _metrics(at).items()}
    assert metrics.pop("Partners") == sum(metrics.values()) == 4
    assert metrics["Never synced"] == 1 and metrics["Failing"] == 1
    table = _frame_with(at, "freshness").set_index("partner")
    assert table.loc["New Co", "last_success_at"] == "never"
    assert "None" not in set(table["last_success_at"].astype(str))


def test_the_worklist_filters_by_severity_owner_and_type(app_as):
    at = app_as("cs").switch_page(PAGE).run()
    at.multiselect(key="overview.severity").select("critical").run()
    assert _frame_with(at, "next_step").empty
    at.multiselect(key="overview.severity").unselect("critical").run()
    at.multiselect(key="overview.owner").select("partner").run()
    at.multiselect(key="overview.type").select("Subtype unmapped").run()
    assert len(_frame_with(at, "next_step")) == 2
    assert not at.exception


def test_a_long_worklist_lists_the_most_urgent_first_and_says_how_to_reach_the_rest(app_as, monkeypatch):
    monkeypatch.setattr(overview_screen, "WORKLIST_ROWS", 1)
    at = app_as("cs").switch_page(PAGE).run()
    listed = _frame_with(at, "next_step")
    assert len(listed) == 1
    assert any(caption.value.startswith("The first 1 of 2 matching issues (2 open); filter by severity, owner or "
                                        "type") for caption in at.caption)
    assert at.selectbox(key="overview.issue").options == [at.selectbox(key="overview.issue").format_func(
        int(listed.iloc[0]["issue_id"]))]
    assert [subheader.value for subheader in at.subheader][:1] == ["Issues (2 open)"]


def test_the_issue_picker_links_to_the_page_and_partner_that_fix_it(app_as):
    at = app_as("cs").switch_page(PAGE).run()
    issue = _frame_with(at, "next_step").iloc[0]
    at.selectbox(key="overview.issue").set_value(int(issue["issue_id"])).run()
    [link] = at.get("page_link")
    assert link.proto.label == f"Open Agreements for {issue['partner']}"
    assert (link.proto.page, link.proto.query_string) == ("agreements", f"partner={int(issue['partner_id'])}")


def test_cs_snoozes_an_issue_with_a_reason_and_it_moves_last(app_as, engine):
    at = app_as("cs").switch_page(PAGE).run()
    first = _frame_with(at, "next_step").iloc[0]
    at.selectbox(key="overview.issue").set_value(int(first["issue_id"])).run()
    at.text_input(key="overview.snooze_reason").input("Partner maps subtypes next week")
    at.button(key="overview.snooze_submit").click().run()
    assert not at.exception
    assert [plain_text(success.value) for success in at.success] == ["Snoozed until 2026-11-03 12:00 UTC."]
    worklist = _frame_with(at, "next_step")
    assert list(worklist["issue_id"])[-1] == first["issue_id"]
    assert worklist.iloc[-1]["snoozed"] == ("snoozed until 2026-11-03 12:00 UTC: Partner maps subtypes next week "
                                            "(by cs@example.com)")
    with engine.connect() as conn:
        assert conn.scalar(select(ISSUE_TABLE.c.snooze_reason).where(ISSUE_TABLE.c.id == int(first["issue_id"]))) \
            == "Partner maps subtypes next week"
        assert conn.scalar(select(AuditEvent.action).order_by(AuditEvent.id.desc()).limit(1)) == "snooze_issue"


def test_a_snooze_without_a_reason_says_what_to_do(app_as, engine):
    at = app_as("cs").switch_page(PAGE).run()
    at.button(key="overview.snooze_submit").click().run()
    assert [plain_text(error.value) for error in at.error] == [
        "Say why the issue can wait (the reason shows next to it for everyone)."]
    with engine.connect() as conn:
        assert conn.scalar(select(ISSUE_TABLE.c.id).where(ISSUE_TABLE.c.snoozed_until.is_not(None))) is None


def test_overview_filters_partners_by_text_and_freshness(app_as):
    at = app_as("cs").switch_page(PAGE).run()
    at.text_input(key="overview.search").input("globex").run()
    assert list(_frame_with(at, "freshness")["partner"]) == ["Globex Partners"]
    at.text_input(key="overview.search").input("").run()
    at.multiselect(key="overview.freshness").select("on time").run()
    assert list(_frame_with(at, "freshness")["partner"]) == ["Acme MSP"]
    assert not at.exception


@pytest.mark.parametrize("account", ["acme", "pm"])
def test_partner_and_pm_accounts_cannot_open_the_overview(app_as, page_as, account):
    with pytest.raises(ValueError, match="Could not find a navigation page"):  # not in their navigation
        app_as(account).switch_page(PAGE)
    guarded = page_as(account, PAGE)
    assert [error.value for error in guarded.error] == ["Your account cannot open this page."]
    assert not guarded.dataframe and not guarded.title

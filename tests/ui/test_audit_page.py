import contextlib
from datetime import timedelta

import pytest

from core.actions.sign_in import SessionKeys, SignInFailed, SignInLocked, sign_in
from core.store import audit
from tests.support.clock import NOW

PAGE = "pages/audit.py"


@pytest.fixture
def logged(engine, console):
    with engine.begin() as conn:
        audit.record(conn, actor="cs@example.com", action="connect", partner_id=console["acme"].partner_id,
                     now=NOW - timedelta(days=2), detail="primary integration at https://acme.halopsa.com")
        audit.record(conn, actor="ap@acme.example", action="manual_fetch", partner_id=console["acme"].partner_id,
                     now=NOW - timedelta(hours=3), detail="Fetch new data: run 9 succeeded")
        audit.record(conn, actor="cs@example.com", action="edit_connection",
                     partner_id=console["globex"].partner_id, now=NOW - timedelta(hours=1),
                     detail="Client ID changed")


def _all_partners(app_as):
    """The audit log as cs sees it with the partner filter (which follows the sidebar pick) set to all partners."""
    at = app_as("cs").switch_page(PAGE).run()
    at.selectbox(key="audit.partner").set_value(None).run()
    return at


def test_audit_log_lists_events_newest_first_for_customer_success(app_as, logged):
    at = _all_partners(app_as)
    assert not at.exception
    events = at.dataframe[0].value
    assert events["action"].tolist() == ["Sign in", "Edit connection", "Manual fetch", "Connect"]  # this test's own
    assert events["partner"].tolist() == ["—", "Globex Partners", "Acme MSP", "Acme MSP"]
    assert "4 matching events" in at.caption[0].value


def test_audit_filters_by_action_and_actor(app_as, logged):
    at = _all_partners(app_as)
    at.selectbox(key="audit.actor").set_value("cs@example.com").run()
    assert at.dataframe[0].value["action"].tolist() == ["Sign in", "Edit connection", "Connect"]
    at.selectbox(key="audit.action").set_value("connect").run()
    assert at.dataframe[0].value["detail"].tolist() == ["primary integration at https://acme.halopsa.com"]


def test_audit_pages_hold_fifty_events_each(app_as, engine, logged):
    with engine.begin() as conn:
        for minute in range(60):
            audit.record(conn, actor="cs@example.com", action="export", now=NOW - timedelta(minutes=minute),
                         detail=f"export {minute}")
    at = _all_partners(app_as)
    assert len(at.dataframe[0].value) == 50 and "page 1 of 2" in at.caption[0].value
    at.number_input(key="audit.page").set_value(2).run()
    details = at.dataframe[0].value["detail"].tolist()
    assert len(details) == 14 and details[0] == "export 49"  # page 1: this test's sign-in and exports 0-48
    assert details[-3:] == ["Client ID changed", "Fetch new data: run 9 succeeded",
                            "primary integration at https://acme.halopsa.com"]


@pytest.mark.parametrize("account", ["acme", "pm"])
def test_partner_and_pm_accounts_cannot_open_the_audit_log(app_as, page_as, logged, account):
    with pytest.raises(ValueError, match="Could not find a navigation page"):  # not in their navigation
        app_as(account).switch_page(PAGE)
    guarded = page_as(account, PAGE)
    assert [error.value for error in guarded.error] == ["Your account cannot open this page."]
    assert not guarded.dataframe


def test_sign_ins_that_failed_or_were_refused_are_on_the_audit_log(app_as, engine, settings, console):
    keys = SessionKeys.load(engine, settings)
    for _ in range(7):
        with contextlib.suppress(SignInFailed, SignInLocked):
            sign_in(engine, email="pm@example.com", password="wrong", client="203.0.113.5", now=NOW, keys=keys)
    at = _all_partners(app_as)
    at.selectbox(key="audit.actor").set_value("pm@example.com").run()
    events = at.dataframe[0].value
    assert events["action"].tolist().count("Sign in failed") == 6
    assert events["action"].tolist().count("Sign in locked") == 1
    assert events["detail"].str.contains("from 203.0.113.5").sum() == 7


def test_the_partner_filter_follows_the_sidebar_pick(app_as, console, logged):
    """Issue 14: the partner filter ignored the partner picked in the sidebar."""
    at = app_as("cs", partner="globex").switch_page(PAGE).run()

    assert at.selectbox(key="audit.partner").value == console["globex"].partner_id
    assert at.dataframe[0].value["partner"].tolist() == ["Globex Partners"]
    at.selectbox(key="audit.partner").set_value(None).run()  # all partners: kept while the sidebar pick stays
    at.run()
    assert at.selectbox(key="audit.partner").value is None and len(at.dataframe[0].value) == 4
    at.session_state["partner_id"] = console["acme"].partner_id  # another pick in the sidebar
    at.run()

    assert at.selectbox(key="audit.partner").value == console["acme"].partner_id
    assert at.dataframe[0].value["partner"].tolist() == ["Acme MSP", "Acme MSP"]


def test_the_filtered_log_downloads_as_csv_within_the_download_limits(app_as, engine, logged):
    at = app_as("cs").switch_page(PAGE).run()

    button = at.download_button(key="audit.download")
    assert (button.label, button.disabled) == ("Download CSV", False)
    with engine.begin() as conn:
        for seconds in (10, 20, 30):
            audit.record(conn, actor="cs@example.com", action="export", now=NOW - timedelta(seconds=seconds),
                         detail="earlier download")
    at.run()
    assert at.download_button(key="audit.download").disabled
    assert "Try again in" in " ".join(caption.value for caption in at.caption)

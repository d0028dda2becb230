import json
from datetime import timedelta

import pytest
from sqlalchemy import func, select
from streamlit.testing.v1.errors import AppTestError

from core.actions import connect
from core.demo import sandbox
from core.store.tables import RUN_TABLE, RunKind, RunStatus
from core.sync import runs
from tests.support.clock import NOW

PAGE = "pages/syncs.py"


@pytest.fixture
def open_syncs(app_as):
    return lambda account, partner=None: app_as(account, partner=partner).switch_page(PAGE).run()


def _run_count(engine):
    with engine.connect() as conn:
        return conn.scalar(select(func.count()).select_from(RUN_TABLE))


def _texts(at):
    return " ".join(str(element.value) for kind in ("caption", "markdown", "info", "error", "success", "warning")
                    for element in getattr(at, kind))


@pytest.mark.parametrize(("account", "partner"), [("cs", "acme"), ("acme", None)])
def test_primary_partner_sees_both_fetch_buttons_charts_and_its_runs(open_syncs, account, partner):
    at = open_syncs(account, partner)
    assert not at.exception
    assert at.button(key="syncs.fetch_new_data").label == "Fetch new data"
    assert not at.button(key="syncs.fetch_unpaid").disabled
    assert "Available now." in _texts(at) and "Not run yet." in _texts(at)
    assert "Invoices updated" in _texts(at)  # the freshness line
    charts = [json.loads(chart.proto.spec) for chart in at.get("plotly_chart")]
    assert [c["layout"]["yaxis"]["title"]["text"] for c in charts] == [
        "Runs (count)", "Records (count)", "Duration (seconds)"]
    table = at.dataframe[0].value
    assert len(table) == 4 and set(table["Status"]) == {"Succeeded", "Partial", "Failed"}
    assert "Globex" not in str(at)


@pytest.mark.parametrize(("account", "partner"), [("cs", "globex"), ("globex", None)])
def test_secondary_partner_has_no_fetch_buttons_and_is_told_why(open_syncs, account, partner):
    at = open_syncs(account, partner)
    assert not at.exception
    assert not [b for b in at.button if b.key and b.key.startswith("syncs.fetch")]
    assert "secondary integration" in at.info[0].value
    assert "Acme" not in str(at)


def test_product_managers_cannot_open_the_syncs_page(app_as):
    at = app_as("pm")
    with pytest.raises(ValueError, match="Could not find a navigation page"):
        at.switch_page(PAGE)
    assert "Acme" not in str(at) and "Globex" not in str(at)


def test_the_page_guard_stops_a_pm_who_reaches_the_script(page_as):
    at = page_as("pm", PAGE)
    assert "cannot open this page" in at.error[0].value
    assert not at.dataframe and not at.get("plotly_chart") and "Acme" not in _texts(at)


def test_a_recent_fetch_locks_its_button_with_a_countdown_and_who_ran_it(open_syncs, console, engine, settings):
    acme = console["acme"].partner_id
    run_id = runs.start_run(engine, partner_id=acme, partner_name="Acme MSP", kind=RunKind.FETCH_UNPAID,
                            trigger="manual", actor="ap@acme.example", now=NOW - timedelta(hours=2),
                            settings=settings, claim_cooldown=True)
    with engine.begin() as conn:
        runs.save_progress(conn, run_id, acme, now=NOW, created=0, updated=7)
    runs.finish_run(engine, run_id, acme, status=RunStatus.SUCCEEDED, now=NOW - timedelta(hours=2))
    at = open_syncs("cs", "acme")
    assert at.button(key="syncs.fetch_unpaid").disabled and not at.button(key="syncs.fetch_new_data").disabled
    texts = _texts(at)
    assert "Available in 10:00:00, at 2026-11-02 22:00:00 UTC." in texts
    assert "Last run by ap@acme.example at 2026-11-02 10:00:00 UTC, succeeded: 0 created, 7 updated." in texts


def test_a_fetch_runs_against_a_sandbox_shows_its_counts_then_counts_down(open_syncs, engine, settings, console):
    client_id, client_secret = sandbox.credentials("syncs-page.sandbox")
    form = connect.ConnectionForm(partner_name="Sandbox MSP", app_domain="syncs-page.sandbox",
                                      client_id=client_id, client_secret=client_secret)
    partner_id, _ = connect.connect(engine, console["cs"], form, now=NOW, settings=settings)
    at = open_syncs("cs")
    at.session_state["partner_id"] = partner_id
    at.run()
    at.button(key="syncs.fetch_new_data").click().run()
    assert not at.exception
    assert [status.label for status in at.status] == ["Fetch new data"]
    assert at.success[0].value.startswith("Fetch new data finished (run #")
    assert at.button(key="syncs.fetch_new_data").disabled and not at.button(key="syncs.fetch_unpaid").disabled
    texts = _texts(at)
    assert "Available in 1:00:00, at 2026-11-02 13:00:00 UTC." in texts
    assert "Last run by cs@example.com at 2026-11-02 12:00:00 UTC, succeeded:" in texts


def test_a_locked_button_is_disabled_so_it_cannot_be_clicked(open_syncs, console, engine, settings):
    runs.start_run(engine, partner_id=console["acme"].partner_id, partner_name="Acme MSP",
                   kind=RunKind.FETCH_NEW_DATA, trigger="manual", actor="cs@example.com",
                   now=NOW - timedelta(minutes=10), settings=settings, claim_cooldown=True)
    at = open_syncs("acme")
    with pytest.raises(AppTestError, match="disabled"):
        at.button(key="syncs.fetch_new_data").click()


def test_a_press_after_another_tab_took_the_cooldown_starts_nothing_and_shows_the_countdown(open_syncs, console,
                                                                                            engine, settings):
    at = open_syncs("acme")
    acme = console["acme"].partner_id
    run_id = runs.start_run(engine, partner_id=acme, partner_name="Acme MSP", kind=RunKind.FETCH_NEW_DATA,
                            trigger="manual", actor="cs@example.com", now=NOW, settings=settings, claim_cooldown=True)
    runs.finish_run(engine, run_id, acme, status=RunStatus.SUCCEEDED, now=NOW)
    before = _run_count(engine)
    at.button(key="syncs.fetch_new_data").click().run()
    assert not at.exception and _run_count(engine) == before
    assert at.button(key="syncs.fetch_new_data").disabled
    assert "Available in 1:00:00" in _texts(at) and "Last run by cs@example.com" in _texts(at)


@pytest.mark.parametrize(("finished", "message"), [
    (True, "was run recently; it is available again in 1 h"),
    (False, "already running"),
])
def test_a_fetch_request_the_core_refuses_starts_no_run_and_says_why(open_syncs, console, engine, settings,
                                                                     finished, message):
    """The page body, not the timer, starts fetches; a request that lost a race is refused in words."""
    at = open_syncs("acme")
    acme = console["acme"].partner_id
    run_id = runs.start_run(engine, partner_id=acme, partner_name="Acme MSP", kind=RunKind.FETCH_NEW_DATA,
                            trigger="manual", actor="ap@acme.example", now=NOW, settings=settings, claim_cooldown=True)
    if finished:
        runs.finish_run(engine, run_id, acme, status=RunStatus.SUCCEEDED, now=NOW)
    before = _run_count(engine)
    at.session_state["syncs.request"] = "fetch_new_data"  # what the button leaves for the page body
    at.run()
    assert not at.exception
    assert message in at.error[0].value
    assert _run_count(engine) == before


def test_filters_narrow_the_table_and_run_detail_shows_the_failure_reason(open_syncs):
    at = open_syncs("cs", "acme")
    at.multiselect(key="syncs.statuses").select("failed").run()
    table = at.dataframe[0].value
    assert list(table["Status"]) == ["Failed"]
    assert at.selectbox(key="syncs.run").value == int(table["Run"][0])
    assert "HTTP 503" in at.error[0].value and "Every record in this run was read." in _texts(at)

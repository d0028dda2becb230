import base64
import json
import re
import threading
from datetime import timedelta

import numpy
import pytest
from sqlalchemy import func, select
from streamlit.testing.v1.errors import AppTestError

from core.actions import connect, fetches
from core.console import syncs as syncs_screen
from core.demo import sandbox
from core.halopsa.records import RecordError
from core.store.tables import DRIFT_TABLE, JOB_TABLE, RUN_TABLE, DriftKind, JobState, RunKind, RunStatus
from core.sync import connector, runs, worker
from tests.support.clock import NOW
from tests.support.factories import add_reconciliation, add_run
from tests.support.markdown import plain_text

PAGE = "pages/syncs.py"


@pytest.fixture
def open_syncs(app_as):
    return lambda account, partner=None: app_as(account, partner=partner).switch_page(PAGE).run()


def _run_count(engine):
    with engine.connect() as conn:
        return conn.scalar(select(func.count()).select_from(RUN_TABLE))


def _job_count(engine):
    with engine.connect() as conn:
        return conn.scalar(select(func.count()).select_from(JOB_TABLE))


def _texts(at):
    return " ".join(plain_text(element.value) for kind in ("caption", "markdown", "info", "error", "success", "warning")
                    for element in getattr(at, kind))


def _run_picker(at):
    """The run detail's picker (a new one, with a key of its own, follows each run a press starts)."""
    [picker] = [box for box in at.selectbox if box.label == "Run detail"]
    return picker


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
    assert "Runs started 2026-10-04 to 2026-11-02 (UTC): the last 30 days up to the latest run" in _texts(at)
    table = at.dataframe[0].value
    assert len(table) == 4 and set(table["Status"]) == {"Succeeded", "Partial", "Failed"}
    assert "Globex" not in str(at)


@pytest.mark.parametrize(("account", "partner"), [("cs", "globex"), ("globex", None)])
def test_secondary_partner_has_no_fetch_buttons_and_is_told_why(open_syncs, account, partner):
    at = open_syncs(account, partner)
    assert not at.exception
    assert not [b for b in at.button if b.key and b.key.startswith("syncs.fetch")]
    assert "secondary integration" in plain_text(at.info[0].value)
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


def _sandbox_partner_open(open_syncs, engine, settings, console):
    """The Syncs page of a new partner on a sandbox tenant (answered in process), opened by cs."""
    client_id, client_secret = sandbox.credentials("syncs-page.sandbox")
    form = connect.ConnectionForm(partner_name="Sandbox MSP", app_domain="syncs-page.sandbox",
                                  client_id=client_id, client_secret=client_secret)
    partner_id, _ = connect.connect(engine, console["cs"], form, now=NOW, settings=settings)
    at = open_syncs("cs")
    at.session_state["partner_id"] = partner_id
    return at.run(), partner_id


def test_a_press_queues_the_fetch_shows_it_live_and_a_worker_runs_it(open_syncs, engine, settings, console):
    at, _ = _sandbox_partner_open(open_syncs, engine, settings, console)
    before = _run_count(engine)
    at.button(key="syncs.fetch_new_data").click().run()
    assert not at.exception and _run_count(engine) == before  # the page queues; it never runs a sync itself
    assert at.success[0].value.startswith("Fetch new data queued")
    assert "Queued by cs@example.com at 2026-11-02 12:00:00 UTC; waiting for a worker." in _texts(at)
    assert plain_text(syncs_screen.NO_WORKER_CS) in _texts(at)
    assert at.button(key="syncs.fetch_new_data").disabled and not at.button(key="syncs.fetch_unpaid").disabled
    assert "Available in 1:00:00, at 2026-11-02 13:00:00 UTC." in _texts(at)

    results = worker.drain(engine, settings, connector.stored_client_factory(settings), lease=timedelta(seconds=60))
    assert [result.status for result in results] == [RunStatus.SUCCEEDED]
    at.run()  # a later rerun (or another tab) reads the outcome from the database
    assert "Last run by cs@example.com at 2026-11-02 12:00:00 UTC, succeeded:" in _texts(at)
    assert "Queued by" not in _texts(at)


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
    assert "Available in 1:00:00" in _texts(at) and "Last run by Customer success on your behalf" in _texts(at)


@pytest.mark.parametrize(("queued", "message"), [
    (False, "Fetch new data was already run by ap@acme.example at 2026-11-02 12:00:00 UTC. The next one can start in "
            "1 h, at 2026-11-02 13:00:00 UTC."),
    (True, "Fetch new data is already queued (pressed by ap@acme.example at 2026-11-02 10:00:00 UTC): watch it "
           "below, nothing more is needed."),
])
def test_a_fetch_request_the_core_refuses_starts_no_run_and_says_what_will_happen(open_syncs, console, engine,
                                                                                  settings, queued, message):
    """The page body, not the timer, queues fetches; a request that lost a race is refused with what happens instead:
    it said "wait for it to finish, then try again" of a queued fetch whose cooldown would refuse that too."""
    at = open_syncs("acme")
    acme = console["acme"].partner_id
    if queued:  # another tab's press is queued and has not run yet
        fetches.request_manual_fetch(engine, console["acme"], partner_id=acme, kind=RunKind.FETCH_NEW_DATA,
                                     now=NOW - timedelta(hours=2), settings=settings)
    else:  # another tab's fetch already ran: its cooldown holds
        run_id = runs.start_run(engine, partner_id=acme, partner_name="Acme MSP", kind=RunKind.FETCH_NEW_DATA,
                                trigger="manual", actor="ap@acme.example", now=NOW, settings=settings,
                                claim_cooldown=True)
        runs.finish_run(engine, run_id, acme, status=RunStatus.SUCCEEDED, now=NOW)
    before = _run_count(engine), _job_count(engine)
    at.session_state["syncs.request"] = "fetch_new_data"  # what the button leaves for the page body
    at.run()
    assert not at.exception
    said = _texts(at)
    assert message in said and "try again" not in said and "wait for it to finish" not in said
    assert (_run_count(engine), _job_count(engine)) == before


def test_customer_success_cancels_a_queued_fetch_and_its_cooldown_comes_back(open_syncs, console, engine, settings):
    acme = console["acme"].partner_id
    job_id = fetches.request_manual_fetch(engine, console["acme"], partner_id=acme, kind=RunKind.FETCH_UNPAID,
                                          now=NOW, settings=settings)
    at = open_syncs("cs", "acme")
    assert at.button(key="syncs.fetch_unpaid").disabled
    at.button(key=f"syncs.cancel.{job_id}").click().run()
    assert not at.exception
    assert "Queued by" not in _texts(at) and not at.button(key="syncs.fetch_unpaid").disabled
    with engine.connect() as conn:
        assert conn.scalar(select(JOB_TABLE.c.state).where(JOB_TABLE.c.id == job_id)) == JobState.CANCELLED


def test_a_partner_user_sees_its_queued_fetch_but_cannot_cancel_it(open_syncs, console, engine, settings):
    acme = console["acme"].partner_id
    job_id = fetches.request_manual_fetch(engine, console["acme"], partner_id=acme, kind=RunKind.FETCH_UNPAID,
                                          now=NOW, settings=settings)
    at = open_syncs("acme")
    assert "Queued by ap@acme.example" in _texts(at)
    assert not [b for b in at.button if b.key == f"syncs.cancel.{job_id}"]


def test_filters_narrow_the_table_and_run_detail_shows_the_failure_reason(open_syncs):
    at = open_syncs("cs", "acme")
    at.multiselect(key="syncs.statuses").select("failed").run()
    table = at.dataframe[0].value
    assert list(table["Status"]) == ["Failed"]
    assert _run_picker(at).value == int(table["Run"][0])
    assert "HTTP 503" in plain_text(at.error[0].value)
    # it said "Every record in this run was read." under a failed run that had read nothing
    assert "The run stopped before it read any record." in _texts(at) and "Every record" not in _texts(at)
    assert "4 requests (retries included), 3 pages" in _texts(at)


def _numbers(values):
    """A chart's numbers as Plotly sends them: a list, or a typed array (base64 bytes and their dtype)."""
    if isinstance(values, dict):
        return numpy.frombuffer(base64.b64decode(values["bdata"]), dtype=values["dtype"]).tolist()
    return values


def _drain(engine, settings):
    return worker.drain(engine, settings, connector.stored_client_factory(settings), lease=timedelta(seconds=60))


def test_after_a_press_the_run_detail_follows_the_run_just_started(open_syncs, engine, settings, console):
    """The detail kept showing the run picked before the press."""
    at, _ = _sandbox_partner_open(open_syncs, engine, settings, console)
    at.button(key="syncs.fetch_unpaid").click().run()
    [earlier] = _drain(engine, settings)
    at.run()
    assert _run_picker(at).value == earlier.run_id
    at.button(key="syncs.fetch_new_data").click().run()
    assert "The fetch you pressed is queued: its run shows here as soon as it starts." in _texts(at)
    [result] = _drain(engine, settings)
    at.run()
    assert _run_picker(at).value == result.run_id != earlier.run_id
    assert "Fetch new data run #" in _texts(at) and int(at.dataframe[0].value["Run"][0]) == result.run_id
    _run_picker(at).set_value(earlier.run_id).run()  # a pick made since is left alone
    at.run()
    assert _run_picker(at).value == earlier.run_id


def test_record_errors_are_grouped_by_reason_with_an_example_halopsa_id(open_syncs, console, engine, settings):
    acme = console["acme"].partner_id
    run_id = runs.start_run(engine, partner_id=acme, partner_name="Acme MSP", kind=RunKind.SCHEDULED,
                            trigger="schedule", actor="scheduler", now=NOW - timedelta(minutes=10), settings=settings)
    bad = [RecordError("invoice", 4000 + n, f"expected an amount, got 'x{n}'", {"id": 4000 + n}) for n in range(3)]
    with engine.begin() as conn:
        runs.add_record_errors(conn, run_id, acme, bad)
        runs.save_progress(conn, run_id, acme, now=NOW, rejected=3, invoices_seen=50)
    runs.finish_run(engine, run_id, acme, status=RunStatus.PARTIAL, now=NOW - timedelta(minutes=9))
    at = open_syncs("cs", "acme")
    assert _run_picker(at).value == run_id
    groups = at.dataframe[1].value  # under the run table
    assert groups.to_dict("records") == [{"Record": "Invoice", "Reason": "expected an amount, got …", "Records": 3,
                                          "Example HaloPSA ID": "4000",
                                          "Example as HaloPSA sent it": "{'id': 4000}"}]


def test_a_partner_with_no_runs_gets_charts_that_say_why_without_blaming_filters(open_syncs, engine, settings,
                                                                                   console):
    at, _ = _sandbox_partner_open(open_syncs, engine, settings, console)
    with engine.begin() as conn:  # its backfill is queued, not run: no run yet
        assert conn.scalar(select(func.count()).select_from(RUN_TABLE).where(RUN_TABLE.c.partner_id == _)) == 0
    for chart in at.get("plotly_chart"):
        layout = json.loads(chart.proto.spec)["layout"]
        assert [note["text"] for note in layout["annotations"]] == ["No runs yet: this partner has not synced."]
        assert layout["xaxis"]["visible"] is False and layout["yaxis"]["visible"] is False


def test_charts_draw_one_bar_per_day_not_one_per_run(open_syncs, console, engine, settings):
    """"Records per run" drew a hairline bar per run (about 500 in the demo); "Duration per run" a flat line."""
    acme = console["acme"].partner_id
    for hour in range(1, 72):
        add_run(engine, settings, acme, at=NOW - timedelta(days=1, hours=hour), created=hour % 4, updated=1)
    at = open_syncs("cs", "acme")
    records, duration = (json.loads(chart.proto.spec) for chart in at.get("plotly_chart")[1:])
    assert records["layout"]["title"]["text"] == "Records per day"
    assert {len(trace["x"]) for trace in records["data"]} == {5}  # 2026-10-29 to 2026-11-02: 76 runs on 5 days
    assert [trace["name"] for trace in duration["data"]] == ["Median", "95th percentile"]
    assert {value for trace in duration["data"] for value in _numbers(trace["y"])} == {60.0}  # each took a minute


def test_a_partner_user_reads_plain_words_and_customer_success_instead_of_staff_addresses(open_syncs, console,
                                                                                          engine, settings):
    acme = console["acme"].partner_id
    run_id = runs.start_run(engine, partner_id=acme, partner_name="Acme MSP", kind=RunKind.FETCH_NEW_DATA,
                            trigger="manual", actor="cs@example.com", now=NOW - timedelta(minutes=10),
                            settings=settings, claim_cooldown=True)
    runs.finish_run(engine, run_id, acme, status=RunStatus.SUCCEEDED, now=NOW - timedelta(minutes=9),
                    error="HaloPSA is rate limiting this tenant.")
    at = open_syncs("acme")
    table = at.dataframe[0].value
    assert not {"Trigger", "Requests", "Unchanged", "By"} & set(table.columns)
    assert {"Started by", "Calls to HaloPSA", "Already up to date", "Could not be read"} <= set(table.columns)
    assert set(table["Started by"]) == {"Customer success", "Automatic"}
    said = _texts(at) + " ".join(str(value) for value in table["Error"])
    assert "Last run by Customer success on your behalf at 2026-11-02 11:50:00 UTC" in said
    assert "cs@example.com" not in str(at) and "cs@example.com" not in table.to_string()
    assert not re.search(r"\b(scheduler|tenant|requests?|Trigger|Unchanged)\b", said, re.IGNORECASE)


def test_a_fetch_runs_on_when_its_page_is_left_and_its_session_closed_and_every_session_sees_it(open_syncs, engine,
                                                                                                 settings, console):
    at, partner_id = _sandbox_partner_open(open_syncs, engine, settings, console)
    at.button(key="syncs.fetch_new_data").click().run()
    at.switch_page("pages/invoices.py").run()  # the person leaves the page while the fetch waits for a worker
    assert not at.exception
    with engine.connect() as conn:
        job_id = conn.scalar(select(JOB_TABLE.c.id).where(JOB_TABLE.c.partner_id == partner_id))
    between_pages, go_on, results = threading.Event(), threading.Event(), []

    def hold_after_the_first_page(message: str) -> None:
        if message.endswith(" read") and not between_pages.is_set():
            between_pages.set()
            go_on.wait(30)

    running = threading.Thread(target=lambda: results.append(worker.run_job_now(
        engine, settings, connector.stored_client_factory(settings), job_id, lease=timedelta(seconds=60),
        progress=hold_after_the_first_page)))
    running.start()
    assert between_pages.wait(30)
    another_tab = open_syncs("cs")  # a reload, another tab or another replica: a new session
    another_tab.session_state["partner_id"] = partner_id
    another_tab.run()
    assert "Fetch new data** · Running: Customers:" in _texts(another_tab)
    assert "(1 page so far)" in _texts(another_tab)
    del at  # the session that pressed is gone
    go_on.set()
    running.join(30)

    assert [result.status for result in results] == [RunStatus.SUCCEEDED]
    another_tab.run()
    assert "Last run by cs@example.com at 2026-11-02 12:00:00 UTC, succeeded:" in _texts(another_tab)
    assert "Running:" not in _texts(another_tab)


# ---- reconciliation with HaloPSA ----------------------------------------------------------------------------------

def _reconciliation_jobs(engine):
    with engine.connect() as conn:
        return conn.execute(select(JOB_TABLE.c.kind, JOB_TABLE.c.state).where(
            JOB_TABLE.c.kind.in_([RunKind.RECONCILE, RunKind.RESYNC])).order_by(JOB_TABLE.c.id)).all()


def test_customer_success_reconciles_with_the_cost_stated_before(open_syncs, engine):
    at = open_syncs("cs", "acme")
    assert not at.exception
    assert "Not reconciled yet." in _texts(at) and "writes nothing here; it costs" in _texts(at)
    assert "HaloPSA requests" in _texts(at)
    at.button(key="syncs.reconcile").click().run()
    assert not at.exception
    assert _reconciliation_jobs(engine) == [(RunKind.RECONCILE, JobState.QUEUED)]
    assert "Reconciliation queued" in _texts(at)
    assert at.button(key="syncs.reconcile").disabled  # one at a time
    assert "is queued" in _texts(at)


@pytest.mark.parametrize(("account", "partner"), [("acme", None), ("cs", "globex")])
def test_no_reconciliation_for_partner_users_nor_a_secondary_integration(open_syncs, account, partner):
    at = open_syncs(account, partner)
    assert not at.exception
    assert not [b for b in at.button if b.key in ("syncs.reconcile", "syncs.resync")]
    assert "Reconciliation with HaloPSA" not in str(at)


def test_the_latest_reconciliation_shows_its_drift_escaped_and_resyncs_it(open_syncs, engine, console):
    acme = console["acme"].partner_id
    add_reconciliation(engine, acme, at=NOW - timedelta(hours=1),
                       drift={41: DriftKind.AMOUNT_DIFFERS, 42: DriftKind.EXTRA_HERE},
                       halo_unpaid=json.dumps({"USD": [3, 30000], "CAD": [1, 500]}),
                       local_unpaid=json.dumps({"USD": [2, 20000]}))
    with engine.begin() as conn:  # HaloPSA's words are shown as text, never as markdown or HTML
        conn.execute(DRIFT_TABLE.update().where(DRIFT_TABLE.c.halo_id == 41).values(halo_value="**bold** <b>x</b>"))
    at = open_syncs("cs", "acme")
    assert not at.exception
    assert "2 invoices differ from HaloPSA: 1 extra here (deleted in HaloPSA) · 1 with another amount." in _texts(at)
    unpaid = next(frame.value for frame in at.dataframe if "Currency" in frame.value.columns)
    assert list(unpaid["Currency"]) == ["CAD", "USD"] and list(unpaid["Difference"]) == ["5.00", "100.00"]
    items = next(frame.value for frame in at.dataframe if "Difference" in frame.value.columns
                 and "HaloPSA ID" in frame.value.columns)
    assert list(items["HaloPSA ID"]) == ["41", "42"] and "**bold** <b>x</b>" in list(items["In HaloPSA"])
    assert "bold" not in " ".join(element.value for element in at.markdown)
    resync = at.button(key="syncs.resync")
    assert resync.label == "Resync 2 invoices"
    resync.click().run()
    assert not at.exception
    assert _reconciliation_jobs(engine) == [(RunKind.RESYNC, JobState.QUEUED)]
    assert "Resync queued" in _texts(at)


def test_customer_success_sees_the_partners_with_drift(open_syncs, engine, console):
    at = open_syncs("cs", "acme")
    assert "Partners with drift from HaloPSA (0)" in str(at.expander)
    assert "No partner's latest reconciliation found" in _texts(at)
    add_reconciliation(engine, console["acme"].partner_id, at=NOW, drift={7: DriftKind.MISSING_HERE})
    at = open_syncs("cs", "acme")
    assert not at.exception
    [fleet] = [frame.value for frame in at.dataframe if "Partner" in frame.value.columns]
    assert list(fleet["Partner"]) == ["Acme MSP"] and list(fleet["Differing invoices"]) == [1]

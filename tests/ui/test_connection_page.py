from datetime import date, timedelta

import pytest
import streamlit as st
from sqlalchemy import func, select

from core.access import Principal
from core.actions import connect, fetches
from core.console import connection as connection_screen
from core.demo import sandbox
from core.halopsa.auth import CREDENTIALS_REJECTED
from core.halopsa.config import REQUIRED_SCOPES
from core.store.tables import (
    AUDIT_TABLE,
    CONNECTION_TABLE,
    INVOICE_TABLE,
    JOB_TABLE,
    PARTNER_TABLE,
    RUN_TABLE,
    AuditAction,
    Role,
    RunKind,
    RunStatus,
)
from core.store.users import add_user, principal_for_email
from core.sync import connector, worker
from tests.support.clock import NOW
from tests.support.console_db import PASSWORD
from tests.support.factories import add_partner
from tests.support.markdown import plain_text
from tests.support.page_tree import connection_mode, rendered
from ui import connection_form, tenant_check

PAGE = "pages/connection.py"
STORED_SECRET = "s3cret-value"  # what tests.support.factories.add_partner stores for Acme and Globex


@pytest.fixture
def open_connection(app_as):
    return lambda account, partner=None: app_as(account, partner=partner).switch_page(PAGE).run()


def _counts(engine):
    with engine.connect() as conn:
        return tuple(conn.scalar(select(func.count()).select_from(table))
                     for table in (PARTNER_TABLE, CONNECTION_TABLE))


def _fill(at, **values):
    for name, value in values.items():
        key = f"connection.{name}"
        if name in ("invoice_number_field", "integration_role"):
            at.radio(key=key).set_value(value)
        elif name == "invoices_created_since":
            at.date_input(key=key).set_value(value)
        else:
            at.text_input(key=key).input(value)
    at.button(key="connection.continue").click().run()
    return at


def _new_partner(at, **values):
    connection_mode(at).set_value("new").run()
    return _fill(at, **values)


def _form_elements(block):
    for child in block.children.values():
        if child.type == "expander":
            yield from _form_elements(child)
        else:
            yield child


def _error_after(at, key):
    """The error shown right under the widget with `key` inside the form (None when there is none)."""
    form = next(block for block in at.main.children.values() if block.type == "form")
    elements = list(_form_elements(form))
    position = next(i for i, element in enumerate(elements) if getattr(element, "key", None) == key)
    below = elements[position + 1]
    return plain_text(below.value) if below.type == "error" else None


def _markdown(at):
    return "\n".join(element.value for element in at.markdown)  # raw: the facts carry escapes, the checklist not


@pytest.mark.parametrize(("account", "partner"), [("cs", "acme"), ("acme", None)])
def test_the_stored_connection_shows_without_its_secret(open_connection, account, partner):
    at = open_connection(account, partner)
    assert not at.exception
    secret = at.text_input(key="connection.client_secret")
    assert secret.value == "" and secret.help.startswith("Leave empty to keep the stored secret (for the same App")
    assert at.text_input(key="connection.app_domain").value == "https://acme.halopsa.com"
    assert at.text_input(key="connection.partner_name").disabled
    assert "**App Domain:** https://acme.halopsa.com" in plain_text(_markdown(at))
    assert STORED_SECRET not in str(at) and STORED_SECRET not in repr(dict(at.session_state))
    assert "Before you start, in HaloPSA" in [e.label for e in at.expander]
    for step in ("Client ID and Secret (Services)", "Agent", "QuickBooks Online", *REQUIRED_SCOPES):
        assert step in _markdown(at)


@pytest.mark.parametrize(("account", "partner", "offered"), [("cs", "acme", True), ("acme", None, False)])
def test_customer_success_is_offered_the_support_bundle_and_a_partner_is_not(open_connection, account, partner,
                                                                            offered):
    at = open_connection(account, partner)
    buttons = [button for button in at.get("download_button") if button.proto.label == "Download support bundle"]
    assert ("Support bundle" in [header.value for header in at.subheader]) is offered
    assert len(buttons) == int(offered)
    if offered:
        assert buttons[0].proto.label == "Download support bundle"
        assert "no secret and no customer e-mail" in "\n".join(caption.value for caption in at.caption)


def test_the_form_is_filled_again_after_visiting_another_page(open_connection):
    at = open_connection("cs", "acme")
    at.switch_page("pages/syncs.py").run()
    at.switch_page(PAGE).run()
    assert at.text_input(key="connection.app_domain").value == "https://acme.halopsa.com"
    assert at.text_input(key="connection.client_secret").value == ""


def test_the_partner_account_never_sees_another_partners_name(open_connection):
    at = open_connection("acme")
    assert "Globex" not in str(at)
    assert not [radio for radio in at.radio if (radio.key or "").startswith("connection.mode")]  # no "new partner"


def test_product_managers_cannot_open_the_connection_page(app_as, page_as):
    at = app_as("pm")
    assert not at.exception
    with pytest.raises(ValueError, match="Could not find a navigation page"):  # not in the pm's navigation
        at.switch_page(PAGE)
    at = page_as("pm", PAGE)  # and the page's own guard, should the script be reached anyway
    assert "cannot open this page" in at.error[0].value
    assert not at.text_input and "Acme" not in _markdown(at)


def test_a_sandbox_domain_shows_its_demo_credentials(open_connection):
    at = open_connection("cs", "acme")
    client_id, client_secret = sandbox.credentials(connection_screen.TRAINEE_SANDBOX)
    hint = at.info[0].value
    assert connection_screen.TRAINEE_SANDBOX in hint and client_id in hint and client_secret in hint


@pytest.mark.parametrize(("values", "field", "words"), [
    ({}, "partner_name", "Partner name is required"),
    ({"partner_name": "New MSP"}, "app_domain", "App Domain is required"),
    ({"partner_name": "New MSP", "app_domain": "acme halopsa"}, "app_domain", "cannot contain spaces"),
    ({"partner_name": "New MSP", "app_domain": "http://new.halopsa.com"}, "app_domain", "must use https://"),
    ({"partner_name": "New MSP", "app_domain": "https://[oops].sandbox"}, "app_domain", "App Domain"),
    ({"partner_name": "New MSP", "app_domain": "trainee.sandbox"}, "client_id", "Client ID is required"),
    ({"partner_name": "New MSP", "app_domain": "trainee.sandbox", "client_id": "abc"}, "client_secret",
     "Client Secret is required"),
    ({"partner_name": "Acme MSP", "app_domain": "trainee.sandbox"}, "partner_name", "already exists"),
])
def test_each_bad_input_is_explained_under_its_field_and_nothing_is_saved(open_connection, engine, values, field,
                                                                          words):
    at = open_connection("cs", "acme")
    before = _counts(engine)
    _new_partner(at, **values)
    assert not at.exception
    assert words in (_error_after(at, f"connection.{field}") or "")
    assert _counts(engine) == before


def test_a_wrong_secret_for_a_sandbox_tenant_is_refused_under_the_secret(open_connection, engine):
    at = open_connection("cs", "acme")
    before = _counts(engine)
    client_id, _ = sandbox.credentials("trainee.sandbox")
    _new_partner(at, partner_name="Trainee MSP", app_domain="trainee.sandbox", client_id=client_id,
                 client_secret="not-the-secret")
    assert _error_after(at, "connection.client_secret") == CREDENTIALS_REJECTED
    assert _counts(engine) == before


def test_missing_permissions_are_crossed_with_a_fix_and_nothing_is_saved(open_connection, engine):
    at = open_connection("cs", "acme")
    before = _counts(engine)
    host = "limited-trainee.sandbox"
    client_id, client_secret = sandbox.credentials(host)
    _new_partner(at, partner_name="Limited MSP", app_domain=host, client_id=client_id, client_secret=client_secret)
    assert "lacks: admin:webhooks, edit:invoices" in plain_text(at.error[0].value)
    checklist = _markdown(at)
    for scope in REQUIRED_SCOPES:
        mark = "❌" if scope in ("admin:webhooks", "edit:invoices") else "✅"
        assert f"{mark} `{scope}`" in checklist
    assert checklist.count("Permissions tab, save, then press Continue again") == 2
    assert _counts(engine) == before


def test_a_good_sandbox_connection_is_saved_verified_and_its_backfill_queued(open_connection, engine, settings):
    at = open_connection("cs", "acme")
    partners, connections_ = _counts(engine)
    client_id, client_secret = sandbox.credentials("trainee.sandbox")
    _new_partner(at, partner_name="Trainee MSP", app_domain="trainee.sandbox", client_id=client_id,
                 client_secret=client_secret, invoice_number_field="third_party",
                 invoices_created_since=date(2026, 1, 1))
    assert not at.exception
    assert _counts(engine) == (partners + 1, connections_ + 1)
    assert all(f"✅ `{scope}`" in _markdown(at) for scope in REQUIRED_SCOPES)
    assert "Saved the connection for Trainee MSP." in plain_text(at.success[0].value)
    assert connection_form.BACKFILL_QUEUED in [info.value for info in at.info]
    with engine.connect() as conn:  # the console queued the backfill; it never runs a sync itself
        partner_id = conn.scalar(select(PARTNER_TABLE.c.id).where(PARTNER_TABLE.c.name == "Trainee MSP"))
        assert conn.execute(select(RUN_TABLE).where(RUN_TABLE.c.partner_id == partner_id)).all() == []
    [result] = worker.drain(engine, settings, connector.stored_client_factory(settings), lease=timedelta(seconds=60))
    with engine.connect() as conn:
        run = conn.execute(select(RUN_TABLE).where(RUN_TABLE.c.partner_id == partner_id)).one()
        invoices = conn.scalar(select(func.count()).select_from(INVOICE_TABLE)
                               .where(INVOICE_TABLE.c.partner_id == partner_id))
    assert (run.kind, run.trigger, run.status) == (RunKind.BACKFILL, "connect", RunStatus.SUCCEEDED)
    assert invoices > 0
    at.run()  # the next run starts from a blank form again: the typed secret is not kept in the widget
    assert at.text_input(key="connection.client_secret").value == ""


def _editing(open_connection, engine, settings, host):
    """The Connection page open on a sandbox partner's stored connection, as cs."""
    client_id, client_secret = sandbox.credentials(host)
    partner_id = add_partner(engine, settings, name="Sandbox MSP", now=NOW, app_domain=f"https://{host}",
                             client_id=client_id, client_secret=client_secret)
    at = open_connection("cs")
    at.session_state["partner_id"] = partner_id
    at.run()
    return at, partner_id


def test_editing_with_an_empty_secret_keeps_the_stored_one(open_connection, console, engine, settings):
    at, partner_id = _editing(open_connection, engine, settings, "edit-me.sandbox")
    _fill(at, integration_role="secondary")
    assert not at.exception
    saved = plain_text(at.success[0].value)
    assert "Saved the connection for Sandbox MSP." in saved and not at.status  # secondary: no backfill
    with engine.connect() as conn:
        role = conn.scalar(select(CONNECTION_TABLE.c.integration_role)
                           .where(CONNECTION_TABLE.c.partner_id == partner_id))
    assert role == "secondary"



def _number_field(engine, partner_id):
    with engine.connect() as conn:
        return conn.scalar(select(CONNECTION_TABLE.c.invoice_number_field)
                           .where(CONNECTION_TABLE.c.partner_id == partner_id))


def test_changing_the_invoice_number_field_queues_a_renumbering_and_says_so(open_connection, engine, settings):
    at, partner_id = _editing(open_connection, engine, settings, "renumber-me.sandbox")

    _fill(at, invoice_number_field="third_party")  # first the page says what it will do, and saves nothing

    assert not at.exception and not at.success
    assert "No invoices are stored yet, so nothing is renumbered" in plain_text(at.warning[0].value)
    assert _number_field(engine, partner_id) == "halo_id"
    at.button(key="connection.renumber").click().run()

    assert not at.exception
    assert "Saved the connection for Sandbox MSP." in plain_text(at.success[0].value)
    assert _number_field(engine, partner_id) == "third_party"
    assert connection_form.RENUMBER_QUEUED in [info.value for info in at.info]
    with engine.connect() as conn:  # queued for a worker; the console renumbered nothing itself
        assert conn.execute(select(RUN_TABLE).where(RUN_TABLE.c.partner_id == partner_id)).all() == []
    results = worker.drain(engine, settings, connector.stored_client_factory(settings), lease=timedelta(seconds=60))
    assert (RunKind.RENUMBER, RunStatus.SUCCEEDED) in [(result.kind, result.status) for result in results]


SANDBOX_USER = "ap@sandbox.example"


@pytest.fixture
def sandbox_partner(console, engine, settings):
    """A partner connected to the sandbox `connected.sandbox` with its real credentials, and its own account
    ("sandbox"); returns its stored secret."""
    client_id, client_secret = sandbox.credentials("connected.sandbox")
    partner_id = add_partner(engine, settings, name="Sandbox MSP", now=NOW, app_domain="https://connected.sandbox",
                             client_id=client_id, client_secret=client_secret)
    add_user(engine, email=SANDBOX_USER, name="Sandbox", role=Role.PARTNER, password=PASSWORD, partner_id=partner_id)
    console["sandbox"] = principal_for_email(engine, SANDBOX_USER)
    return client_secret


@pytest.mark.parametrize("account", ["cs", "sandbox"])
def test_a_connected_sandbox_partners_page_holds_no_secret(open_connection, console, sandbox_partner, account):
    at = open_connection(account)
    if account == "cs":
        at.session_state["partner_id"] = console["sandbox"].partner_id
        at.run()
    assert not at.exception
    assert at.text_input(key="connection.app_domain").value == "https://connected.sandbox"
    assert "connected to a partner already" in at.info[0].value
    assert sandbox_partner not in rendered(at)


@pytest.mark.parametrize(("account", "partner"), [("cs", "acme"), ("acme", None)])
def test_typing_a_connected_sandboxs_name_shows_no_secret(open_connection, sandbox_partner, account, partner):
    at = open_connection(account, partner)
    _fill(at, app_domain="Connected.sandbox")  # the hint follows the App Domain sent with Continue
    assert not at.exception
    assert "connected to a partner already" in at.info[0].value
    assert sandbox_partner not in rendered(at)
    _fill(at, app_domain="unused-name.sandbox")  # a name nobody uses still shows its demo credentials
    assert sandbox.credentials("unused-name.sandbox")[1] in at.info[0].value


def test_what_the_halopsa_supports_shows_in_plain_words_and_a_check_can_be_asked_for(open_connection, engine):
    at = open_connection("cs", "acme")  # a partner saved without a check (as before probes existed)
    assert "What this HaloPSA supports" in [e.label for e in at.expander]
    assert "Not checked yet" in "\n".join(c.value for c in at.caption)
    at.button(key="connection.check_tenant").click().run()
    assert not at.exception
    assert tenant_check.QUEUED in [info.value for info in at.info]
    assert not [b for b in at.button if b.key == "connection.check_tenant"]  # one check at a time
    with engine.connect() as conn:
        assert conn.scalar(select(JOB_TABLE.c.kind)) == RunKind.PROBE


def test_a_checked_sandbox_partner_shows_the_findings(open_connection, engine, settings):
    at, partner_id = _editing(open_connection, engine, settings, "checked.sandbox")
    cs = Principal(role=Role.CS, user="cs@example.com")
    job_id = fetches.request_tenant_check(engine, cs, partner_id=partner_id, now=NOW)
    worker.run_job_now(engine, settings, connector.stored_client_factory(settings), job_id,
                       lease=timedelta(seconds=60), now=NOW)
    at.run()
    text = plain_text(_markdown(at))
    assert "Pages: pages of 100 rows, as asked." in text
    assert "Sign-in: tokens come from https://checked.sandbox/auth/token" in text
    assert "Checked 2026-11-02 12:00 UTC with" in plain_text("\n".join(c.value for c in at.caption))


def test_a_number_field_change_says_how_many_invoices_it_renumbers_before_saving(open_connection, engine):
    at = open_connection("cs", "acme")  # 60 invoices numbered by their third-party number
    acme = at.session_state["partner_id"]
    _fill(at, invoice_number_field="halo_id")
    assert not at.exception and not at.success
    warning = plain_text(at.warning[0].value)
    assert "Saving renumbers all 60 stored invoices of Acme MSP by HaloPSA ID instead of Third Party" in warning
    assert "it takes seconds" in warning and "Save and renumber" in warning
    assert at.button(key="connection.renumber").label == "Save and renumber"
    assert _number_field(engine, acme) == "third_party"
    with engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(JOB_TABLE)) == 0
    at.run()  # the question is asked once: another run drops it, and nothing was saved
    assert not [b for b in at.button if b.key == "connection.renumber"]
    assert _number_field(engine, acme) == "third_party"


def test_a_new_partner_is_picked_and_shown_once_connected_and_a_second_one_connects_too(open_connection, engine):
    at = open_connection("cs", "acme")
    partners, connections_ = _counts(engine)
    client_id, client_secret = sandbox.credentials("trainee.sandbox")
    _new_partner(at, partner_name="Trainee MSP", app_domain="trainee.sandbox", client_id=client_id,
                 client_secret=client_secret)
    assert not at.exception
    with engine.connect() as conn:
        trainee = conn.scalar(select(PARTNER_TABLE.c.id).where(PARTNER_TABLE.c.name == "Trainee MSP"))
    assert at.session_state["partner_id"] == trainee and at.query_params["partner"] == str(trainee)
    mode = connection_mode(at)
    assert (mode.value, mode.options) == ("edit", ["Edit Trainee MSP", "Connect a new partner"])
    assert "Stored connection: Trainee MSP" in [plain_text(h.value) for h in at.subheader]
    assert "Saved the connection for Trainee MSP." in plain_text(at.success[0].value)
    name = at.text_input(key="connection.partner_name")
    assert (name.value, name.disabled) == ("Trainee MSP", True)
    assert at.text_input(key="connection.client_secret").value == ""

    second_id, second_secret = sandbox.credentials("second.sandbox")
    _new_partner(at, partner_name="Second MSP", app_domain="second.sandbox", client_id=second_id,
                 client_secret=second_secret)
    assert not at.exception and not at.error
    assert "Saved the connection for Second MSP." in plain_text(at.success[0].value)
    assert _counts(engine) == (partners + 2, connections_ + 2)


def test_while_connecting_the_buttons_are_disabled_and_each_step_shows(open_connection, monkeypatch):
    def slow(*args, progress, **kwargs):  # stops the page mid-connect, as a person sees it while it works
        for step in (connect.STEP_DOMAIN, connect.STEP_TOKEN, "HaloPSA answered HTTP 503; retrying in 2.0 s"):
            progress(step)
        st.stop()

    monkeypatch.setattr(connect, "connect_and_backfill", slow)
    at = open_connection("cs", "acme")
    _fill(at, client_secret="typed")
    assert not at.exception
    assert at.button(key="connection.continue").disabled and at.button(key="connection.test").disabled
    [status] = at.status
    assert status.label == "Connecting: HaloPSA answered HTTP 503; retrying in 2.0 s…"
    assert [plain_text(m.value) for m in status.markdown] == [connect.STEP_DOMAIN, connect.STEP_TOKEN,
                                                              "HaloPSA answered HTTP 503; retrying in 2.0 s"]
    monkeypatch.undo()
    at.run()  # the next run draws them enabled again
    assert not at.button(key="connection.continue").disabled and not at.button(key="connection.test").disabled


def test_a_connect_to_a_failing_halopsa_says_nothing_was_saved_and_to_press_continue(open_connection, engine,
                                                                                     monkeypatch):
    monkeypatch.setenv("HALO_MAX_ATTEMPTS", "2")
    monkeypatch.setenv("HALO_BACKOFF_CAP_S", "0.01")
    at = open_connection("cs", "acme")
    before = _counts(engine)
    client_id, client_secret = sandbox.credentials("flaky.sandbox")
    _new_partner(at, partner_name="Flaky MSP", app_domain="flaky.sandbox", client_id=client_id,
                 client_secret=client_secret)
    assert not at.exception
    [error] = [plain_text(e.value) for e in at.error]
    assert error.startswith("HaloPSA did not answer (HTTP 503) after 2 attempts; it may be down.")
    assert error.endswith("Nothing was saved; press Continue to try again.") and "sync" not in error
    assert _counts(engine) == before
    assert at.text_input(key="connection.partner_name").value == "Flaky MSP"  # what was typed stays
    assert not at.button(key="connection.continue").disabled


def _audit_details(engine):
    with engine.connect() as conn:
        return conn.execute(select(AUDIT_TABLE.c.detail).where(AUDIT_TABLE.c.action == AuditAction.VERIFY_CONNECTION)
                            ).scalars().all()


def test_testing_a_connection_shows_the_permissions_and_what_it_supports_and_saves_nothing(open_connection, engine):
    at = open_connection("cs", "acme")
    before = _counts(engine)
    client_id, client_secret = sandbox.credentials("trainee.sandbox")
    connection_mode(at).set_value("new").run()
    for name, value in {"partner_name": "Trainee MSP", "app_domain": "trainee.sandbox", "client_id": client_id,
                        "client_secret": client_secret}.items():
        at.text_input(key=f"connection.{name}").input(value)
    at.button(key="connection.test").click().run()
    assert not at.exception and not at.error
    assert plain_text(at.success[0].value).startswith("HaloPSA accepted these credentials and granted all seven")
    text = _markdown(at)
    assert all(f"✅ `{scope}`" in text for scope in REQUIRED_SCOPES)
    assert "What this HaloPSA supports" in text and "Pages: pages of 100 rows, as asked." in plain_text(text)
    assert _counts(engine) == before
    assert _audit_details(engine)[-1].endswith("(a check: nothing saved)")
    assert at.text_input(key="connection.partner_name").value == "Trainee MSP"  # ready to press Continue


def test_a_test_with_missing_permissions_crosses_them_and_saves_nothing(open_connection, engine):
    at = open_connection("cs", "acme")
    before = _counts(engine)
    client_id, client_secret = sandbox.credentials("limited-trainee.sandbox")
    connection_mode(at).set_value("new").run()
    for name, value in {"partner_name": "Limited MSP", "app_domain": "limited-trainee.sandbox",
                        "client_id": client_id, "client_secret": client_secret}.items():
        at.text_input(key=f"connection.{name}").input(value)
    at.button(key="connection.test").click().run()
    assert "lacks: admin:webhooks, edit:invoices. Nothing was saved" in plain_text(at.error[0].value)
    assert "❌ `edit:invoices`" in _markdown(at) and "What this HaloPSA supports" not in _markdown(at)
    assert _counts(engine) == before


def test_the_same_tenant_connected_to_another_partner_is_warned_about(open_connection, console, engine,
                                                                      sandbox_partner):
    at = open_connection("cs", "acme")
    client_id, _ = sandbox.credentials("connected.sandbox")
    _new_partner(at, partner_name="Twin MSP", app_domain="connected.sandbox", client_id=client_id,
                 client_secret=sandbox_partner)
    assert not at.exception
    assert "Saved the connection for Twin MSP." in plain_text(at.success[0].value)  # a warning, not a refusal
    warnings = [plain_text(w.value) for w in at.warning]
    assert any(w.startswith("Sandbox MSP is already connected to this HaloPSA tenant") for w in warnings)
    at.session_state["partner_id"] = console["sandbox"].partner_id
    at.run()  # the other partner's stored connection says so too
    assert any(plain_text(w.value).startswith("Twin MSP is already connected") for w in at.warning)

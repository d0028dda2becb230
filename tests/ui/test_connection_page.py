from datetime import date, timedelta

import pytest
from sqlalchemy import func, select

from core.access import Principal
from core.actions import fetches
from core.console import connection as connection_screen
from core.demo import sandbox
from core.halopsa.auth import CREDENTIALS_REJECTED
from core.halopsa.config import REQUIRED_SCOPES
from core.store.tables import (
    CONNECTION_TABLE,
    INVOICE_TABLE,
    JOB_TABLE,
    PARTNER_TABLE,
    RUN_TABLE,
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
from tests.support.page_tree import rendered
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
    at.radio(key="connection.mode").set_value("new").run()
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


def test_the_form_is_filled_again_after_visiting_another_page(open_connection):
    at = open_connection("cs", "acme")
    at.switch_page("pages/syncs.py").run()
    at.switch_page(PAGE).run()
    assert at.text_input(key="connection.app_domain").value == "https://acme.halopsa.com"
    assert at.text_input(key="connection.client_secret").value == ""


def test_the_partner_account_never_sees_another_partners_name(open_connection):
    at = open_connection("acme")
    assert "Globex" not in str(at)
    assert not [radio for radio in at.radio if radio.key == "connection.mode"]  # no "new partner" for a partner


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



def test_changing_the_invoice_number_field_queues_a_renumbering_and_says_so(open_connection, engine, settings):
    at, partner_id = _editing(open_connection, engine, settings, "renumber-me.sandbox")

    _fill(at, invoice_number_field="third_party")

    assert not at.exception
    assert "Saved the connection for Sandbox MSP." in plain_text(at.success[0].value)
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

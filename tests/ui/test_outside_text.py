"""Outside text (from HaloPSA or a form) is drawn as the text it is, never as Markdown or chart HTML: a partner whose
every text field holds links, images, HTML, autolinks, directives and formulas, rendered on every page for customer
success and for the partner's own account, and after the actions that echo outside text back (saving a connection or
a rule, a refused duplicate name). The whole element tree is read: Markdown bodies, captions, alerts, toasts, titles,
widget labels and help, radio options, metric labels and values, expander and tab labels, and every chart spec."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from datetime import date, timedelta
from typing import Any

import pytest
from sqlalchemy import update
from streamlit.testing.v1 import AppTest

from core.access import PAGES, Principal
from core.console import agreements
from core.demo import sandbox
from core.halopsa import records
from core.store import audit, tables, upserts
from core.store.tables import CONNECTION_TABLE, NumberField, Role, RunKind, RunStatus, RunTrigger
from core.store.users import add_user, principal_for_email
from core.sync import jobs, runs, streams
from tests.support.clock import NOW
from tests.support.console_db import APP, PASSWORD
from tests.support.factories import add_partner
from tests.support.markdown import markup, plain_text
from tests.support.page_tree import connection_mode, strings
from tests.support.subtype_names import name_subtypes

PAYLOAD = ('![t](http://evil.test/t.png) [c](http://evil.test/c) <img src=http://evil.test/i> '
           '<a href="http://evil.test/a">a</a> <http://evil.test/l> http://evil.test/b www.evil.test x@evil.test '
           ":red[x] $x$ :material/home: :streamlit:")
# what a form takes (a partner name is at most 120 characters)
FORM_PAYLOAD = "Evil ![t](http://evil.test/t.png) [c](http://evil.test/c) <img src=http://evil.test/i> :red[x] $x$"
PARTNER_EMAIL = "ap@hostile.example"
BIG = 100_000_000  # cents per invoice: the payload currency leads the fleet's unpaid value (the Adoption page's tile)
# Proto fields Streamlit renders as Markdown; everything else (widget values, selectbox options, table cells,
# placeholders, ids) is drawn as plain text. Radio options are Markdown too.
MARKDOWN_FIELDS = {"body", "label", "help", "captions", "delta", "description"}
SHOWN_AS_TEXT = {"connection", "syncs", "invoices", "agreements", "adoption"}  # draw the payload in Markdown


def _records(partner_id: int, engine: Any) -> None:
    """Customers, agreements and unpaid invoices whose every text holds the payload, through the real upserts."""
    customers = [records.Customer(halo_id=i, name=f"{PAYLOAD} {i}", inactive=False, billing_email=f"a{i}@evil.test",
                                  currency=PAYLOAD, last_modified=NOW) for i in (1, 2)]
    agreements = [records.Agreement(halo_id=i, ref=f"{PAYLOAD} {i}", customer_halo_id=i, subtype_id=i,
                                    type_name=PAYLOAD, start_date=date(2026, 1, 1), end_date=None, active=True,
                                    last_modified=NOW) for i in (1, 2)]
    build = streams.invoice_row_factory(NumberField.THIRD_PARTY)
    invoices = [build(records.Invoice(
        halo_id=100 + i, invoice_number=str(100 + i), third_party_number=f"{PAYLOAD} {i}", customer_halo_id=i % 2 + 1,
        customer_name=PAYLOAD, agreement_halo_id=i % 2 + 1, agreement_ref=PAYLOAD, invoice_date=NOW.date(),
        due_date=NOW.date() - timedelta(days=i * 20), total_cents=BIG, amount_paid_cents=0,
        amount_due_cents=BIG, currency=PAYLOAD, posted=True, voided=False, last_modified=NOW)) for i in range(4)]
    with engine.begin() as conn:
        for table, fields, rows in (
                (tables.CUSTOMER_TABLE, streams.CUSTOMER_FIELDS, [streams.customer_row(c) for c in customers]),
                (tables.AGREEMENT_TABLE, streams.AGREEMENT_FIELDS, [streams.agreement_row(a) for a in agreements]),
                (tables.INVOICE_TABLE, streams.INVOICE_FIELDS, invoices)):
            upserts.upsert_rows(conn, table, fields, rows, partner_id=partner_id, now=NOW)
    name_subtypes(engine, partner_id, {1: PAYLOAD, 2: f"Backup {PAYLOAD}"}, now=NOW)


def _history(partner_id: int, engine: Any, settings: Any) -> None:
    """A manual fetch and a failed run by an actor named with the payload, a queued fetch it asked for, a saved
    rule and an audit event it wrote."""
    for kind, status, hours_ago in ((RunKind.FETCH_UNPAID, RunStatus.SUCCEEDED, 3),
                                    (RunKind.SCHEDULED, RunStatus.FAILED, 1)):
        run_id = runs.start_run(engine, partner_id=partner_id, partner_name=PAYLOAD, kind=kind, trigger="manual",
                                actor=PAYLOAD, now=NOW - timedelta(hours=hours_ago), settings=settings,
                                claim_cooldown=kind == RunKind.FETCH_UNPAID)
        runs.finish_run(engine, run_id, partner_id, status=status, now=NOW - timedelta(hours=hours_ago - 0.5),
                        error=PAYLOAD if status == RunStatus.FAILED else None)
    with engine.begin() as conn:
        jobs.enqueue(conn, partner_id=partner_id, kind=RunKind.FETCH_NEW_DATA, trigger=RunTrigger.MANUAL,
                     requested_by=PAYLOAD, now=NOW)
        for subtype_id in (1, None):  # a rule of subtype 1, and one waiting for its subtype to be picked again
            conn.execute(tables.RULE_TABLE.insert().values(
                partner_id=partner_id, subtype_id=subtype_id, subtype_name=PAYLOAD, enabled=True, created_by=PAYLOAD,
                created_at=NOW, updated_at=NOW))
        conn.execute(update(CONNECTION_TABLE).where(CONNECTION_TABLE.c.partner_id == partner_id)
                     .values(last_error=PAYLOAD, missing_scopes="edit:invoices"))
        audit.record(conn, actor=PAYLOAD, action="export", partner_id=partner_id, now=NOW, detail=PAYLOAD)


@pytest.fixture
def hostile(console: dict[str, Principal], engine: Any, settings: Any, signed_in: Any) -> Callable[..., AppTest]:
    """A partner whose name, Client ID, tenant, App Domain, last error, records and actors hold the payload, with an
    account of its own ("hostile"); returns `open(account, page)`: the page as that account sees it, customer success
    having picked the hostile partner."""
    partner_id = add_partner(engine, settings, name=PAYLOAD, now=NOW - timedelta(days=2), app_domain=PAYLOAD,
                             client_id=PAYLOAD, tenant=PAYLOAD, number_field=NumberField.THIRD_PARTY)
    _records(partner_id, engine)
    _history(partner_id, engine, settings)
    add_user(engine, email=PARTNER_EMAIL, name="Hostile", role=Role.PARTNER, password=PASSWORD, partner_id=partner_id)
    console["hostile"] = principal_for_email(engine, PARTNER_EMAIL)

    def open_page(account: str, page: str) -> AppTest:
        at = AppTest.from_file(str(APP), default_timeout=30)
        signed_in(at, account)
        at.session_state["partner_id"] = partner_id
        at.run()
        return at.switch_page(f"pages/{page}.py").run()

    return open_page


def _chart_strings(spec: Any) -> Iterator[str]:
    if isinstance(spec, str):
        yield spec
    elif isinstance(spec, dict):
        for inner in spec.values():
            yield from _chart_strings(inner)
    elif isinstance(spec, list):
        for inner in spec:
            yield from _chart_strings(inner)


def drawn_markup(at: AppTest) -> list[tuple[str, str, str]]:
    """(where, kind, text) of every link, image, HTML tag, directive or formula on the page: the app draws none
    itself, so each one was made by outside text."""
    found = []
    for node in at._tree:
        proto = getattr(node, "proto", None)
        if proto is None:
            continue
        if node.type == "plotly_chart":  # plotly draws <a href> (and <b>, <br>, …) in titles, labels and hovers
            found += [("chart", "HTML tag", text) for text in _chart_strings(json.loads(proto.spec))
                      if re.search(r"<\s*(a|img)\b", text, re.IGNORECASE)]
            continue
        for field, text in strings(proto):
            if field in MARKDOWN_FIELDS:
                found += [(f"{node.type}.{field}", kind, match) for kind, match in markup(text)]
    return found


def drawn_text(at: AppTest) -> str:
    """Every Markdown string on the page as a person reads it."""
    return "\n".join(plain_text(text) for node in at._tree if getattr(node, "proto", None) is not None
                     for field, text in strings(node.proto) if field in MARKDOWN_FIELDS)


@pytest.mark.parametrize("account", ["cs", "hostile"])
def test_no_page_draws_outside_text_as_markup(hostile, console, account):
    for spec in PAGES:
        if console[account].role not in spec.roles:
            continue
        at = hostile(account, spec.slug)
        assert not at.exception, (spec.slug, at.exception)
        assert drawn_markup(at) == [], spec.slug
        if spec.slug in SHOWN_AS_TEXT:  # the payload is on the page, as text
            assert "http://evil.test/b www.evil.test x@evil.test :red[x] $x$" in drawn_text(at), spec.slug


def test_the_connection_page_shows_the_stored_facts_as_text(hostile):
    at = hostile("cs", "connection")
    text = drawn_text(at)
    assert f"Stored connection: {PAYLOAD}" in text and f"**Client ID:** {PAYLOAD}" in text
    assert f"Last error: {PAYLOAD}" in text


def test_actions_echo_outside_text_as_text(hostile, engine, console):
    at = hostile("cs", "connection")
    client_id, client_secret = sandbox.credentials("hostile-form.sandbox")
    connection_mode(at).set_value("new").run()
    for name, value in {"partner_name": FORM_PAYLOAD, "app_domain": "hostile-form.sandbox", "client_id": client_id,
                        "client_secret": client_secret}.items():
        at.text_input(key=f"connection.{name}").input(value)
    at.button(key="connection.continue").click().run()
    assert not at.exception
    assert f"Saved the connection for {FORM_PAYLOAD}." in drawn_text(at)
    assert drawn_markup(at) == []
    connection_mode(at).set_value("new").run()  # the same name again: refused, naming it
    at.text_input(key="connection.partner_name").input(FORM_PAYLOAD)
    at.button(key="connection.continue").click().run()
    assert "already exists" in drawn_text(at) and drawn_markup(at) == []

    at = hostile("hostile", "agreements")
    at.selectbox(key="agreements.subtype").set_value(2).run()
    at.button(key="agreements.save").click().run()
    assert not at.exception
    assert f"Saved the auto-pay rule for Backup {PAYLOAD} (id 2)." in drawn_text(at)
    assert drawn_markup(at) == []
    rule_id = next(rule.id for rule in agreements.list_rules(engine, console["hostile"], console["hostile"].partner_id)
                   if rule.subtype_id == 1)
    at.button(key=f"agreements.delete.{rule_id}").click().run()
    assert f"Delete the auto-pay rule for {PAYLOAD} (id 1) (" in drawn_text(at) and drawn_markup(at) == []
    at.button(key=f"agreements.delete_confirm.{rule_id}").click().run()
    assert f"Deleted the auto-pay rule for {PAYLOAD} (id 1)." in drawn_text(at) and drawn_markup(at) == []
    at.selectbox(key="agreements.name_for").set_value(2).run()
    at.text_input(key="agreements.name").input(FORM_PAYLOAD).run()
    at.button(key="agreements.name.save").click().run()
    assert not at.exception
    assert f"{FORM_PAYLOAD} (id 2)" in drawn_text(at) and drawn_markup(at) == []

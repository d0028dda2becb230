"""Every input on every page is bounded: text inputs by core.limits (the same table core checks), number inputs by a
minimum and a maximum. A 60,000-character value is cut at the limit with a note under the field, never an exception
box, and nothing is saved."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from core.access import PAGES
from core.limits import max_chars
from core.store.tables import CONNECTION_TABLE, PARTNER_TABLE, RULE_TABLE
from tests.support.markdown import plain_text
from tests.support.page_tree import connection_mode

# which limit each text input takes, by key; a text input missing here fails the first test
TEXT_FIELDS = {"invoices.search": "search", "overview.search": "search", "agreements.max_amount": "max_amount",
               "agreements.name": "subtype_name", "overview.snooze_reason": "snooze_reason",
               **{f"connection.{name}": name
                  for name in ("partner_name", "app_domain", "client_id", "client_secret", "tenant")}}
HUGE = "%" * 60_000


def _saved(engine):
    with engine.connect() as conn:
        return tuple(conn.scalar(select(func.count()).select_from(table))
                     for table in (PARTNER_TABLE, CONNECTION_TABLE, RULE_TABLE))


def test_every_text_and_number_input_is_bounded(app_as):
    seen = set()
    for spec in PAGES:
        at = app_as("cs", partner="acme").switch_page(f"pages/{spec.slug}.py").run()
        assert not at.exception, spec.slug
        for widget in at.text_input:
            assert widget.max_chars == max_chars(TEXT_FIELDS[widget.key]), widget.key
            seen.add(widget.key)
        for widget in at.number_input:
            assert widget.proto.has_min and widget.proto.has_max, widget.key
            seen.add(widget.key)
    assert set(TEXT_FIELDS) <= seen and {"audit.page", "invoices.page", "syncs.page", "agreements.days",
                                         "agreements.lookup_id"} <= seen


def _note(at, field):
    return f"takes at most {max_chars(field):,} characters; anything longer is cut off." in " ".join(
        plain_text(caption.value) for caption in at.caption)


@pytest.mark.parametrize(("account", "page", "key"), [("acme", "invoices", "invoices.search"),
                                                      ("cs", "overview", "overview.search"),
                                                      ("acme", "agreements", "agreements.max_amount"),
                                                      ("acme", "agreements", "agreements.name")])
def test_a_60000_character_value_is_cut_at_the_limit_with_a_note(app_as, engine, account, page, key):
    at = app_as(account).switch_page(f"pages/{page}.py").run()
    before = _saved(engine)
    at.text_input(key=key).set_value(HUGE).run()
    assert not at.exception
    assert len(at.text_input(key=key).value) == max_chars(TEXT_FIELDS[key]) and _note(at, TEXT_FIELDS[key])
    assert _saved(engine) == before
    if page == "invoices":  # the cut search ran: no invoice number holds 200 percent signs
        assert at.dataframe[0].value.empty and [metric.value for metric in at.metric][0] == "0"


@pytest.mark.parametrize("field", ["partner_name", "app_domain", "client_id", "client_secret", "tenant"])
def test_a_60000_character_connection_field_is_cut_and_nothing_is_saved(app_as, engine, field):
    at = app_as("cs", partner="acme").switch_page("pages/connection.py").run()
    connection_mode(at).set_value("new").run()
    before = _saved(engine)
    at.text_input(key=f"connection.{field}").set_value(HUGE)
    at.button(key="connection.continue").click().run()
    assert not at.exception
    assert len(at.text_input(key=f"connection.{field}").value) == max_chars(field) and _note(at, field)
    assert _saved(engine) == before

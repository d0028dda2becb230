"""Every text input has one bound (core.limits.TEXT_LIMITS), and core refuses a longer value whatever sent it (the
page, the CLI, a direct call or a crafted request): a BadInput naming the field and the limit, before any query,
and nothing saved."""

from __future__ import annotations

from datetime import timedelta

import pandas as pd
import pytest
from sqlalchemy import func, select

from core.access import Principal
from core.actions import autopay_rules, connect
from core.console import invoices, overview
from core.errors import BadInput
from core.limits import TEXT_LIMITS, max_chars
from core.store.tables import AUDIT_TABLE, CONNECTION_TABLE, PARTNER_TABLE, Role
from tests.support.clock import NOW
from tests.support.factories import add_invoices, add_partner

CS = Principal(role=Role.CS, user="cs@example.com")
FORM = {"partner_name": "Acme MSP", "app_domain": "acme.sandbox", "client_id": "3f1c-client",
        "client_secret": "sec", "tenant": "acme"}


def _saved(engine) -> tuple[int, ...]:
    with engine.connect() as conn:
        return tuple(conn.scalar(select(func.count()).select_from(table))
                     for table in (PARTNER_TABLE, CONNECTION_TABLE, AUDIT_TABLE))


def _refused(raised: pytest.ExceptionInfo[BadInput], field: str) -> None:
    limit = TEXT_LIMITS[field]
    assert raised.value.field == field
    assert raised.value.message.startswith(f"{limit.label} must be {limit.max_chars:,} characters or fewer")


@pytest.mark.parametrize("field", list(FORM))
def test_the_connection_form_refuses_an_over_long_field_and_saves_nothing(engine, settings, field):
    form = connect.ConnectionForm(**{**FORM, field: "a" * (max_chars(field) + 1)})
    with pytest.raises(BadInput) as raised:
        connect.connect(engine, CS, form, now=NOW, settings=settings)
    _refused(raised, field)
    assert _saved(engine) == (0, 0, 0)


@pytest.mark.parametrize("field", ["partner_name", "client_id", "client_secret", "tenant"])
def test_a_field_at_its_limit_is_taken(engine, settings, field):
    form = connect.ConnectionForm(**{**FORM, field: "a" * max_chars(field)})
    clean = connect.validate_form(engine, CS, form, settings=settings, today=NOW.date())
    assert getattr(clean, field) == "a" * max_chars(field)


def test_a_60000_character_invoice_search_is_refused_before_any_query(engine, settings):
    partner_id = add_partner(engine, settings, now=NOW - timedelta(days=1))
    add_invoices(engine, partner_id, [(None, 100, 0)], now=NOW)
    search = invoices.Filters(search="%" * 60_000)
    for call in (invoices.page, invoices.export_csv):
        with pytest.raises(BadInput) as raised:
            call(engine, CS, partner_id, search, now=NOW)
        _refused(raised, "search")
    assert _saved(engine)[2] == 0  # no export was audited
    assert invoices.page(engine, CS, partner_id, invoices.Filters(search="%" * max_chars("search")),
                         now=NOW).total_rows == 0


def test_an_over_long_overview_search_is_refused():
    frame = pd.DataFrame(columns=overview.OVERVIEW_COLUMNS)
    with pytest.raises(BadInput) as raised:
        overview.filter_overview(frame, search="x" * (max_chars("search") + 1))
    _refused(raised, "search")


def test_an_over_long_maximum_amount_is_refused():
    with pytest.raises(BadInput) as raised:
        autopay_rules.parse_amount("1" * (max_chars("max_amount") + 1))
    _refused(raised, "max_amount")

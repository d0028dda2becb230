import json
from datetime import timedelta

import pytest
from sqlalchemy import select

from core.console import exports
from core.store import audit
from core.store.tables import AUDIT_TABLE
from tests.support.clock import NOW

PAGE = "pages/invoices.py"


def _open(app_as, account, console):
    at = app_as(account)
    if account == "cs":
        at.selectbox(key="sidebar.partner").set_value(console["acme"].partner_id).run()
    return at.switch_page(PAGE).run()


def test_cs_sees_acmes_first_page_totals_chart_and_download(app_as, console):
    at = _open(app_as, "cs", console)

    assert not at.exception
    assert at.title[0].value == "Invoices"
    assert [m.value for m in at.metric][0] == "60"
    table = at.dataframe[0].value
    assert len(table) == 50  # one page, not all 60 rows
    assert table["number"].str.startswith(("Acme-INV-", "10")).all()
    assert at.download_button(key="invoices.download").label == "Download CSV"
    figure = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert figure["layout"]["yaxis"]["title"]["text"] == "Amount due (USD)"


def test_the_acme_account_sees_only_acme(app_as, console):
    at = _open(app_as, "acme", console)

    assert not at.exception
    assert len(at.dataframe[0].value) == 50
    assert "Globex" not in str(at)
    assert not any("Globex" in str(value) for value in at.dataframe[0].value.to_numpy().ravel())


def test_filtering_and_paging_change_the_rows(app_as, console):
    at = _open(app_as, "acme", console)

    at.number_input(key="invoices.page").set_value(2).run()
    assert len(at.dataframe[0].value) == 10
    at.text_input(key="invoices.search").input("acme-inv-0012").run()
    table = at.dataframe[0].value
    assert list(table["number"]) == ["Acme-INV-0012"]
    assert at.number_input(key="invoices.page").value == 1  # a new filter starts at the first page
    assert at.metric[0].value == "1"
    at.text_input(key="invoices.search").input("").run()
    at.selectbox(key="invoices.aging").set_value("1-30").run()
    table = at.dataframe[0].value
    assert set(table["aging"]) == {"1-30"} and len(table) == 30


def test_rendering_the_page_exports_nothing(app_as, console, engine):
    at = _open(app_as, "acme", console)

    assert not at.exception
    with engine.connect() as conn:
        assert conn.execute(select(AUDIT_TABLE).where(AUDIT_TABLE.c.action == "export")).first() is None


def test_pm_is_not_offered_the_invoices_page_and_the_page_refuses_it(app_as, page_as):
    at = app_as("pm")
    with pytest.raises(ValueError, match="Could not find a navigation page"):
        at.switch_page(PAGE)

    direct = page_as("pm", PAGE)
    assert [e.value for e in direct.error] == ["Your account cannot open this page."]
    assert not direct.dataframe


def test_a_download_past_the_limits_is_not_offered_and_the_page_says_why(app_as, console, engine, monkeypatch):
    """Issue 13 finding 9: over the row limit, or after the downloads a minute allows, the button is disabled and the
    reason (what to do, when to retry) is shown; a narrower filter offers it again."""
    monkeypatch.setattr(exports, "MAX_DOWNLOAD_ROWS", 10)
    at = _open(app_as, "acme", console)
    assert at.download_button(key="invoices.download").disabled
    assert any("60 rows" in c.value and "Narrow the filters" in c.value for c in at.caption)
    at.text_input(key="invoices.search").input("acme-inv-0012").run()
    assert not at.download_button(key="invoices.download").disabled

    with engine.begin() as conn:
        for _ in range(exports.DOWNLOADS_PER_WINDOW):
            audit.record(conn, actor=console["acme"].user, action="export", partner_id=console["acme"].partner_id,
                         now=NOW - timedelta(seconds=10), detail="earlier download")
    at.run()
    assert at.download_button(key="invoices.download").disabled
    assert any("Try again in 50 s" in c.value for c in at.caption)


def test_the_show_filter_lists_credit_notes_and_drafts_apart(app_as, console):
    """Issue 12: credit notes and drafts are never unpaid; the table lists them on their own, each saying why."""
    at = _open(app_as, "acme", console)
    assert at.selectbox(key="invoices.view").value == "unpaid"

    at.selectbox(key="invoices.view").set_value("credits").run()

    assert not at.exception
    assert (at.metric[0].label, at.metric[0].value) == ("Credit notes", "0")
    at.selectbox(key="invoices.view").set_value("not_posted").run()
    assert at.metric[0].label == "Not posted"

import json
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from core.actions import trace_lookup
from core.console import exports
from core.console.formatting import escape_markdown
from core.store import audit
from core.store.tables import AUDIT_TABLE, INVOICE_TABLE
from core.sync import connector
from halo_emulator import HaloEmulator
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


# ---- issue 14: money per currency, the number marker, search by HaloPSA ID, a secondary partner ---------------------

def _set_currency(engine, partner_id, currency, halo_ids):
    with engine.begin() as conn:
        conn.execute(update(INVOICE_TABLE).where(INVOICE_TABLE.c.partner_id == partner_id,
                                                 INVOICE_TABLE.c.halo_id.in_(halo_ids)).values(currency=currency))


def test_amounts_are_shown_per_currency_with_separators_and_a_currency_column(app_as, console, engine):
    """Issue 14: USD, CAD and GBP invoices were shown as one "Amount due (mixed currencies) 839556.77"."""
    acme = console["acme"].partner_id
    _set_currency(engine, acme, "CAD", [1059, 1058])
    _set_currency(engine, acme, None, [1057])
    with engine.begin() as conn:
        conn.execute(update(INVOICE_TABLE).where(INVOICE_TABLE.c.partner_id == acme, INVOICE_TABLE.c.halo_id == 1005)
                     .values(amount_due_cents=123_456_789, total_cents=123_456_789))

    at = _open(app_as, "acme", console)

    assert not at.exception
    tiles = {metric.label: metric.value for metric in at.metric}
    assert tiles["Unpaid invoices"] == "60"
    assert set(tiles) == {"Unpaid invoices", r"Amount due \(USD\)", r"Amount due \(CAD\)",
                          r"Amount due \(no currency\)"}
    assert tiles[r"Amount due \(CAD\)"] == "201.17"  # 100.59 + 100.58
    assert tiles[r"Amount due \(USD\)"].count(",") == 2  # 1,2xx,xxx.xx
    assert not any("mixed" in str(metric.label) for metric in at.metric)
    table = at.dataframe[0]
    assert "currency" in table.proto.column_order
    assert set(table.value["currency"]) == {"USD", "CAD", "no currency"}
    figure = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert [bar["name"] for bar in figure["data"]] == ["USD", "CAD", "no currency"]


def test_a_number_that_is_the_halopsa_id_says_so_and_the_id_finds_it(app_as, console):
    at = _open(app_as, "acme", console)
    table = at.dataframe[0]
    assert "number_is_fallback" not in table.proto.column_order  # the pale checkbox is gone
    assert table.value.set_index("halo_id").loc[1056, "number_shown"] == "1056 (HaloPSA ID: no third-party number)"

    at.text_input(key="invoices.search").input("1012").run()  # Acme shows the Third Party Invoice Number

    assert list(at.dataframe[0].value["number_shown"]) == ["Acme-INV-0012"]


def test_a_secondary_partner_is_told_why_it_has_no_invoices_instead_of_an_empty_chart(app_as, console, engine):
    with engine.begin() as conn:
        conn.execute(INVOICE_TABLE.delete().where(INVOICE_TABLE.c.partner_id == console["globex"].partner_id))

    at = app_as("globex").switch_page(PAGE).run()

    assert not at.exception
    assert any(info.value.startswith("HaloPSA is the secondary integration for Globex Partners") for info in at.info)
    assert not at.dataframe and not at.get("plotly_chart") and not at.metric


def test_a_secondary_partner_with_invoices_from_before_sees_them_and_why(app_as, console):
    at = app_as("globex").switch_page(PAGE).run()

    assert not at.exception
    assert any("20 invoices listed were synced while HaloPSA was the primary" in info.value for info in at.info)
    assert at.metric[0].value == "20"


def test_a_search_matching_no_row_says_where_that_invoice_stands(app_as, console):
    at = _open(app_as, "acme", console)
    at.selectbox(key="invoices.view").set_value("credits").run()
    at.text_input(key="invoices.search").input(" #Acme-INV-0003").run()  # an unpaid invoice, not a credit note

    assert not at.exception and at.dataframe[0].value.empty
    assert [i.value for i in at.info] == [escape_markdown(
        "Invoice Acme-INV-0003 (HaloPSA ID 1003) is here, partially paid, but never auto-paid: its agreement subtype "
        "(Backup (id 2)) is not mapped to an auto-pay rule.")]
    assert "**What to do:** " + escape_markdown("To charge it, map its agreement subtype to an auto-pay rule on the "
                                                "Agreements page.") in [m.value for m in at.markdown]
    assert not [b for b in at.button if b.key == "invoices.trace_lookup"]  # local data told


def test_the_trace_button_explains_a_listed_invoice_too(app_as, console):
    at = _open(app_as, "acme", console)
    at.text_input(key="invoices.search").input("Acme-INV-0012").run()
    assert len(at.dataframe[0].value) == 1 and not at.info

    at.button(key="invoices.trace_button").click().run()

    assert any("its agreement subtype" in i.value and "is not mapped to an auto\\-pay rule" in i.value
               for i in at.info)


def test_an_unknown_number_offers_the_lookup_in_halopsa_which_answers_and_is_audited(app_as, console, engine,
                                                                                    monkeypatch):
    emu = HaloEmulator(seed=5, invoices=10, start=NOW, rate_limit=None, client_id="client-id",
                       client_secret="s3cret-value")
    monkeypatch.setattr(trace_lookup, "stored_client_factory", lambda settings, engine=None: (
        connector.stored_client_factory(settings, engine=engine, transport=emu.transport())))
    at = _open(app_as, "acme", console)
    at.text_input(key="invoices.search").input("ZZ-404").run()
    assert any(i.value.startswith("No invoice “ZZ\\-404” is here") for i in at.info)

    at.button(key="invoices.trace_lookup").click().run()

    assert not at.exception
    assert [w.value for w in at.warning] == ["HaloPSA has no invoice “ZZ\\-404” \\(searched by invoice number\\)\\."]
    assert any("looked up just now; nothing stored" in c.value for c in at.caption)
    with engine.connect() as conn:
        assert conn.scalar(select(AUDIT_TABLE.c.detail).where(AUDIT_TABLE.c.action == "trace_lookup")) == (
            "Invoice looked up in HaloPSA: “ZZ-404”: not_found; 4 requests")


def test_what_was_typed_is_escaped_in_the_answer(app_as, console):
    at = _open(app_as, "acme", console)
    at.text_input(key="invoices.search").input("**boom** [x](http://evil.example)").run()

    shown = " ".join(i.value for i in at.info) + " ".join(c.value for c in at.caption)
    assert escape_markdown("**boom** [x](http://evil.example)") in shown and "**boom**" not in shown

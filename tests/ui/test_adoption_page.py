import csv
import io
import json
from datetime import date, timedelta

import pytest
from sqlalchemy import select, update

from core.console import adoption
from core.store.tables import AUDIT_TABLE, INVOICE_TABLE
from core.sync import cooldowns
from tests.support.clock import NOW
from tests.support.markdown import plain_text

PAGE = "pages/adoption.py"


def _tiles(at):
    return {plain_text(metric.label): metric.value for metric in at.metric}


def _table(at, column):
    """The table that has `column` (AppTest gives tables no keys)."""
    return next(frame.value for frame in at.dataframe if column in frame.value.columns)


def _rendered(at):
    """Everything a person could read on the page: text elements, tables, metric tiles and chart data."""
    parts = [str(at)]
    parts += [frame.value.to_csv() for frame in at.dataframe]
    parts += [f"{metric.label} {metric.value} {metric.proto.help}" for metric in at.metric]
    parts += [json.dumps(json.loads(chart.proto.spec)) for chart in at.get("plotly_chart")]
    return "\n".join(parts)


@pytest.mark.parametrize("account", ["pm", "cs"])
def test_adoption_shows_the_funnel_tiles_and_charts(app_as, account):
    at = app_as(account).switch_page(PAGE).run()
    assert not at.exception
    assert at.title[0].value == "Adoption"
    funnel = next(frame.value for frame in at.dataframe if "stage" in frame.value.columns).set_index("stage")
    assert funnel["partners"].to_dict() == {"Connected": 1, "First successful sync": 1, "Subtype mapped": 0,
                                            "Auto-pay rule enabled": 0}
    assert funnel.loc["First successful sync", "stopped_here"] == "Acme MSP"
    tiles = _tiles(at)
    assert (tiles["Partners connected"], tiles["Auto-pay enabled"]) == ("1", "0 of 1")
    assert tiles["Unpaid on auto-pay (USD)"] == "0%"
    charts = [json.loads(chart.proto.spec) for chart in at.get("plotly_chart")]
    assert len(charts) == 5 and all(chart["layout"]["yaxis"]["title"]["text"] for chart in charts)


def test_the_pm_page_holds_no_invoice_numbers_or_credentials(app_as):
    text = _rendered(app_as("pm").switch_page(PAGE).run())
    assert "Acme-INV-" not in text and "Globex-INV-" not in text
    assert "client-id" not in text and "s3cret-value" not in text
    assert "Acme MSP" in text  # partner names are allowed for pm


def test_the_period_changes_the_daily_series(app_as):
    at = app_as("pm").switch_page(PAGE).run()
    at.radio(key="adoption.days").set_value(7).run()
    assert not at.exception
    success = json.loads(at.get("plotly_chart")[2].proto.spec)
    assert len(success["data"][0]["x"]) == 7


def test_a_partner_account_cannot_open_adoption(app_as, page_as):
    with pytest.raises(ValueError, match="Could not find a navigation page"):  # not in their navigation
        app_as("acme").switch_page(PAGE)
    guarded = page_as("acme", PAGE)
    assert [error.value for error in guarded.error] == ["Your account cannot open this page."]


# ---- issue 14 ----------------------------------------------------------------------------------------------------

def test_the_dates_apply_to_cooldown_pressure_too(app_as, console, engine):
    """Issue 14: cooldown pressure counted every refusal ever, whatever the period."""
    acme = console["acme"].partner_id
    with engine.begin() as conn:
        for at in (NOW - timedelta(hours=1), NOW - timedelta(days=20)):
            cooldowns.record_refusal(conn, partner_id=acme, kind="fetch_new_data", actor="ap@acme.example", now=at)
    at = app_as("pm").switch_page(PAGE).run()
    assert _tiles(at)["Cooldown refusals"] == "2"

    at.radio(key="adoption.days").set_value(7).run()

    assert _tiles(at)["Cooldown refusals"] == "1"
    pressure = _table(at, "refusals_per_fetch").set_index("fetch")
    assert pressure.loc["Fetch new data", "refusals"] == 1
    cooldown_chart = json.loads(at.get("plotly_chart")[-1].proto.spec)
    assert cooldown_chart["layout"]["title"]["text"] == "Cooldown pressure"


def test_picked_dates_apply_to_every_chart(app_as):
    at = app_as("pm").switch_page(PAGE).run()
    at.radio(key="adoption.days").set_value(adoption.CUSTOM).run()
    at.date_input(key="adoption.dates").set_value((date(2026, 10, 20), date(2026, 10, 31))).run()

    assert not at.exception
    assert any("2026-10-20 to 2026-10-31" in caption.value for caption in at.caption)
    for chart in at.get("plotly_chart")[1:4]:  # the daily charts
        days = json.loads(chart.proto.spec)["data"][0]["x"]
        assert (days[0][:10], days[-1][:10], len(days)) == ("2026-10-20", "2026-10-31", 12)
    assert _tiles(at)["Partners connected"] == "1"  # Acme connected on 2026-10-31
    funnel = _table(at, "stage")
    assert funnel["partners"].iloc[0] == int(_tiles(at)["Partners connected"])


def test_per_partner_breakdown_week_over_week_and_times_to_first_sync(app_as):
    at = app_as("pm").switch_page(PAGE).run()

    partners = _table(at, "to_first_sync").set_index("partner")
    assert list(partners.index) == ["Acme MSP", "Globex Partners"]
    assert partners.loc["Acme MSP", "to_first_sync"] == "18 h 1 min"  # connected 2 days ago, backfilled 30 h ago
    assert partners.loc["Globex Partners", "integration"] == "Secondary"
    weekly = _table(at, "measure").set_index("measure")
    assert weekly.loc["Runs finished"].to_dict() == {"this_week": "8", "previous_week": "0",
                                                      "change": "+8 (none before)"}
    assert _tiles(at)["Median time to first sync"] == "18 h 1 min"


def test_money_is_per_currency_with_separators(app_as, console, engine):
    with engine.begin() as conn:
        conn.execute(update(INVOICE_TABLE).where(INVOICE_TABLE.c.partner_id == console["globex"].partner_id)
                     .values(currency="GBP"))
        conn.execute(update(INVOICE_TABLE).where(INVOICE_TABLE.c.halo_id == 1001)
                     .values(amount_due_cents=123_456_789))
    at = app_as("cs").switch_page(PAGE).run()

    coverage = _table(at, "covered").set_index("currency")
    assert set(coverage.index) == {"USD", "GBP"}
    assert "," in coverage.loc["USD", "unpaid"] and not any("mixed" in label for label in _tiles(at))
    assert {label for label in _tiles(at) if label.startswith("Unpaid on auto-pay")} == {
        "Unpaid on auto-pay (USD)", "Unpaid on auto-pay (GBP)"}


def test_the_per_partner_csv_is_offered_and_audited_when_made(app_as, console, engine):
    at = app_as("pm").switch_page(PAGE).run()
    button = at.download_button(key="adoption.download")
    assert button.label == "Download CSV" and not button.disabled
    with engine.connect() as conn:  # drawing the button exports nothing
        assert conn.execute(select(AUDIT_TABLE).where(AUDIT_TABLE.c.action == "export")).first() is None

    export = adoption.export_csv(engine, console["pm"], adoption.Period.ending(NOW.date(), 30), now=NOW,
                                 throttled=True)
    assert [row["partner"] for row in csv.DictReader(io.StringIO(export.text))] == ["Acme MSP", "Globex Partners"]

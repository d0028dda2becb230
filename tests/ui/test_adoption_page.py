import json

import pytest

PAGE = "pages/adoption.py"


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
    tiles = {metric.label: metric.value for metric in at.metric}
    assert (tiles["Partners connected"], tiles["Auto-pay enabled"]) == ("1", "0 of 1")
    assert tiles["Unpaid value on auto-pay"] == "0%"
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

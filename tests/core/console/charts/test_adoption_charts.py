from datetime import timedelta

import pandas as pd
import pytest

from core.access import Principal
from core.console import adoption
from core.console.charts import adoption as charts
from core.store.tables import Role, RunKind, RunStatus
from tests.support.clock import NOW
from tests.support.factories import add_partner, add_rule, add_run

PM = Principal(role=Role.PM, user="pm@example.com")
HOUR = timedelta(hours=1)
WEEK = adoption.Period.ending(NOW.date(), 7)


@pytest.fixture
def report(engine, settings):
    partner_id = add_partner(engine, settings, now=NOW - timedelta(days=3))
    add_run(engine, settings, partner_id, at=NOW - timedelta(days=2), kind=RunKind.BACKFILL, created=80,
            invoices_seen=60)
    add_run(engine, settings, partner_id, at=NOW - 3 * HOUR, status=RunStatus.FAILED)
    add_run(engine, settings, partner_id, at=NOW - 2 * HOUR, kind=RunKind.FETCH_NEW_DATA, trigger="manual",
            created=3, invoices_seen=3)
    add_rule(engine, partner_id, 1, at=NOW - timedelta(days=1))
    return adoption.report(engine, PM, WEEK)


def _axes(fig):
    return fig.layout.xaxis.title.text, fig.layout.yaxis.title.text


def test_every_figure_has_a_title_and_axes_with_units(report):
    figures = [charts.funnel_figure(report.funnel), charts.records_figure(report.records),
               charts.success_rate_figure(report.success), charts.manual_fetches_figure(report.manual),
               charts.cooldown_pressure_figure(report.pressure)]
    for fig in figures:
        assert fig.layout.title.text
        x_title, y_title = _axes(fig)
        assert x_title and y_title
    assert _axes(figures[1]) == ("Day (UTC)", "Records (count)")
    assert _axes(figures[2]) == ("Day (UTC)", "Successful runs (% of finished)")


def test_funnel_figure_shows_partners_per_stage(report):
    fig = charts.funnel_figure(report.funnel)
    assert list(fig.data[0].y) == [stage for stage, _ in adoption.STAGES]
    assert list(fig.data[0].x) == [1, 1, 1, 1]
    assert fig.layout.xaxis.title.text == "Partners (count)"


def test_success_rate_is_drawn_in_percent_with_gaps_on_days_without_runs(report):
    y = list(charts.success_rate_figure(report.success).data[0].y)
    assert y[-1] == 50.0 and y[-3] == 100.0
    assert pd.isna(y[0])


def test_manual_fetches_stack_one_trace_per_fetch(report):
    fig = charts.manual_fetches_figure(report.manual)
    assert [trace.name for trace in fig.data] == ["Fetch new data", "Fetch unpaid invoices"]
    assert fig.layout.barmode == "stack"
    assert sum(fig.data[0].y) == 1 and sum(fig.data[1].y) == 0


def test_empty_figures_say_nothing_was_recorded_in_the_dates(engine):
    fig = charts.cooldown_pressure_figure(adoption.cooldown_pressure(engine, PM, WEEK))
    assert [a.text for a in fig.layout.annotations] == ["Nothing recorded in these dates."]
    assert len(charts.records_figure(adoption.records_per_day(engine, PM, WEEK)).layout.annotations) == 1
    assert fig.layout.yaxis.rangemode == "nonnegative"


def test_counts_are_thousands_separated_in_labels_hovers_and_axes(report):
    """Issue 14: chart labels showed 12345 where tiles showed 12,345."""
    funnel = charts.funnel_figure(report.funnel).data[0]
    assert "%{value:,}" in funnel.texttemplate and "%{x:,}" in funnel.hovertemplate
    for fig in (charts.records_figure(report.records), charts.manual_fetches_figure(report.manual),
                charts.cooldown_pressure_figure(report.pressure)):
        assert fig.layout.yaxis.tickformat == ","
        assert all("%{y:,}" in trace.hovertemplate for trace in fig.data)
    success = charts.success_rate_figure(report.success).data[0]
    assert "%{customdata[0]:,} of %{customdata[1]:,}" in success.hovertemplate


def test_cooldown_pressure_no_longer_claims_all_time(report):
    assert charts.cooldown_pressure_figure(report.pressure).layout.title.text == "Cooldown pressure"

"""Sync-history figures for the Syncs page, built from `core.console.syncs.ChartData`: one bar or point per UTC day
(never one per run: hundreds of hairline bars read as a barcode).

Every axis names its unit and never goes below zero; a chart with nothing to draw says why in words, with no axes."""

from __future__ import annotations

import plotly.graph_objects as go

from core.console.charts import finish
from core.console.syncs import STATUS_LABELS, ChartData
from core.store.tables import RunStatus

STATUS_COLOURS: dict[str, str] = {
    RunStatus.SUCCEEDED.value: "#2e9d5b",
    RunStatus.PARTIAL.value: "#e0a100",
    RunStatus.FAILED.value: "#d64545",
    RunStatus.RATE_LIMITED.value: "#8a5cd6",
    RunStatus.INTERRUPTED.value: "#8c95a6",
    RunStatus.RUNNING.value: "#2457d6",
}
RECORD_SERIES = (("created", "Created", "#2457d6"), ("updated", "Updated", "#7fa3f0"),
                 ("rejected", "Could not be read", "#d64545"))
DAY_AXIS = "Day (UTC)"
NO_RECORDS = "These runs created, updated and rejected no records."
NO_FINISHED = "No run in these days has finished yet."


def _layout(fig: go.Figure, *, title: str, y_title: str, empty: str | None) -> go.Figure:
    finish(fig, title=title, x_title=DAY_AXIS, y_title=y_title, empty_text=empty)
    if empty:  # no axes to read: a blank frame from -1 to 6 suggested negative counts
        fig.update_xaxes(visible=False)
        fig.update_yaxes(visible=False)
    else:
        fig.update_xaxes(type="date")
        fig.update_yaxes(rangemode="nonnegative")
    return fig


def runs_per_day_figure(data: ChartData) -> go.Figure:
    """Stacked bars: runs per UTC day, one colour per status."""
    fig = go.Figure([
        go.Bar(x=rows["day"], y=rows["runs"], name=STATUS_LABELS.get(str(status), str(status)),
               marker_color=STATUS_COLOURS.get(str(status)), hovertemplate="%{x|%Y-%m-%d}: %{y:,} runs")
        for status, rows in data.daily.groupby("status", sort=False)
    ] if data.empty is None else [])
    fig.update_layout(barmode="stack")
    return _layout(fig, title="Runs per day by status", y_title="Runs (count)", empty=data.empty)


def records_per_day_figure(data: ChartData) -> go.Figure:
    """Stacked bars: records created, updated and rejected (could not be read) per UTC day, over all that day's
    runs."""
    records = data.records
    empty = data.empty or (NO_RECORDS if records[[column for column, _, _ in RECORD_SERIES]].to_numpy().sum() == 0
                           else None)
    fig = go.Figure([
        go.Bar(x=records["day"], y=records[column], name=name, marker_color=colour,
               hovertemplate=f"%{{x|%Y-%m-%d}}: %{{y:,}} {name.lower()}<extra></extra>")
        for column, name, colour in RECORD_SERIES
    ] if empty is None else [])
    fig.update_layout(barmode="stack")
    return _layout(fig, title="Records per day", y_title="Records (count)", empty=empty)


def duration_per_day_figure(data: ChartData) -> go.Figure:
    """Lines: the median and 95th percentile of finished runs' durations per UTC day."""
    durations = data.durations
    empty = data.empty or (NO_FINISHED if durations.empty else None)
    fig = go.Figure([
        go.Scatter(x=durations["day"], y=durations[column], name=name, mode="lines+markers",
                   line={"color": colour, "dash": dash}, customdata=durations["runs"],
                   hovertemplate=f"%{{x|%Y-%m-%d}}: {name.lower()} %{{y:,.2f}} s over %{{customdata:,}} runs"
                                 "<extra></extra>")
        for column, name, colour, dash in (("p50_s", "Median", "#2457d6", "solid"),
                                           ("p95_s", "95th percentile", "#e0a100", "dot"))
    ] if empty is None else [])
    return _layout(fig, title="Run duration per day", y_title="Duration (seconds)", empty=empty)

"""Sync-history figures for the Syncs page, built from `core.console.syncs.ChartData` frames.

Every axis names its unit."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from core.console.charts import finish
from core.console.syncs import STATUS_LABELS
from core.store.tables import RunStatus

STATUS_COLOURS: dict[str, str] = {
    RunStatus.SUCCEEDED.value: "#2e9d5b",
    RunStatus.PARTIAL.value: "#e0a100",
    RunStatus.FAILED.value: "#d64545",
    RunStatus.RATE_LIMITED.value: "#8a5cd6",
    RunStatus.INTERRUPTED.value: "#8c95a6",
    RunStatus.RUNNING.value: "#2457d6",
}
RUN_START_AXIS = "Run start (UTC)"


def _layout(fig: go.Figure, *, title: str, x_title: str, y_title: str, empty: bool) -> go.Figure:
    return finish(fig, title=title, x_title=x_title, y_title=y_title,
                  empty_text="No runs match the filters." if empty else None)


def runs_over_time_figure(daily: pd.DataFrame) -> go.Figure:
    """Stacked bars: runs per UTC day, one colour per status."""
    fig = go.Figure([
        go.Bar(x=rows["day"], y=rows["runs"], name=STATUS_LABELS.get(str(status), str(status)),
               marker_color=STATUS_COLOURS.get(str(status)))
        for status, rows in daily.groupby("status", sort=False)
    ])
    fig.update_layout(barmode="stack")
    return _layout(fig, title="Runs per day by status", x_title="Day (UTC)", y_title="Runs (count)",
                   empty=daily.empty)


def records_per_run_figure(per_run: pd.DataFrame) -> go.Figure:
    """Grouped bars: records created and updated by each run."""
    fig = go.Figure([
        go.Bar(x=per_run["started_at"], y=per_run[column], name=name, marker_color=colour,
               customdata=per_run["run_id"],
               hovertemplate=f"Run #%{{customdata}}<br>%{{y:,}} {name.lower()}<extra></extra>")
        for column, name, colour in (("created", "Created", "#2457d6"), ("updated", "Updated", "#7fa3f0"))
    ])
    fig.update_layout(barmode="group")
    return _layout(fig, title="Records created and updated per run", x_title=RUN_START_AXIS,
                   y_title="Records (count)", empty=per_run.empty)


def duration_per_run_figure(per_run: pd.DataFrame) -> go.Figure:
    """Markers: how long each finished run took, coloured by status."""
    finished = per_run.dropna(subset=["duration_s"])
    fig = go.Figure([
        go.Scatter(x=rows["started_at"], y=rows["duration_s"], mode="markers",
                   name=STATUS_LABELS.get(str(status), str(status)),
                   marker={"color": STATUS_COLOURS.get(str(status)), "size": 8}, customdata=rows["run_id"],
                   hovertemplate="Run #%{customdata}<br>%{y:,.0f} s<extra></extra>")
        for status, rows in finished.groupby("status", sort=False)
    ])
    return _layout(fig, title="Duration per run", x_title=RUN_START_AXIS, y_title="Duration (seconds)",
                   empty=finished.empty)

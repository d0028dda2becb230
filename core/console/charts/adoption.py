"""Adoption figures for the Adoption page, built from `core.console.adoption` frames. Every axis names its unit."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from core.console.charts import finish

DAY_AXIS = "Day (UTC)"
PALETTE = ("#2457d6", "#7fa3f0", "#2e9d5b", "#e0a100")


def _layout(fig: go.Figure, *, title: str, x_title: str, y_title: str, empty: bool) -> go.Figure:
    return finish(fig, title=title, x_title=x_title, y_title=y_title,
                  empty_text="Nothing recorded yet." if empty else None)


def funnel_figure(funnel: pd.DataFrame) -> go.Figure:
    """Partners per activation stage, with the share of connected partners that got there."""
    fig = go.Figure(go.Funnel(
        y=funnel["stage"], x=funnel["partners"], textinfo="value+percent initial", marker_color=PALETTE[0],
        customdata=funnel["median_from_previous"],
        hovertemplate="%{y}: %{x} partners<br>median from previous stage: %{customdata}<extra></extra>",
    ))
    return _layout(fig, title="Activation funnel (HaloPSA as primary integration)", x_title="Partners (count)",
                   y_title="Stage", empty=not funnel["partners"].any())


def records_figure(per_day: pd.DataFrame) -> go.Figure:
    """Bars of records created per day, with a line of invoices read."""
    fig = go.Figure([
        go.Bar(x=per_day["day"], y=per_day["records_created"], name="Records created", marker_color=PALETTE[0]),
        go.Scatter(x=per_day["day"], y=per_day["invoices_read"], name="Invoices read", mode="lines+markers",
                   marker_color=PALETTE[3]),
    ])
    return _layout(fig, title="Records synced per day", x_title=DAY_AXIS, y_title="Records (count)",
                   empty=not (per_day["records_created"].any() or per_day["invoices_read"].any()))


def success_rate_figure(per_day: pd.DataFrame) -> go.Figure:
    """Share of finished runs that succeeded (fully or partially), per day; gaps are days without runs."""
    fig = go.Figure(go.Scatter(
        x=per_day["day"], y=per_day["success_rate"] * 100, mode="lines+markers", marker_color=PALETTE[2],
        customdata=per_day[["successful_runs", "finished_runs"]],
        hovertemplate="%{y:.0f} %<br>%{customdata[0]} of %{customdata[1]} runs<extra></extra>",
    ))
    fig.update_yaxes(range=[0, 105])
    return _layout(fig, title="Sync success rate per day", x_title=DAY_AXIS, y_title="Successful runs (% of finished)",
                   empty=not per_day["finished_runs"].any())


def manual_fetches_figure(per_day: pd.DataFrame) -> go.Figure:
    """Stacked bars: manual fetches started per day, one colour per fetch."""
    kinds = [column for column in per_day.columns if column != "day"]
    fig = go.Figure([
        go.Bar(x=per_day["day"], y=per_day[kind], name=kind, marker_color=colour)
        for kind, colour in zip(kinds, PALETTE, strict=False)
    ])
    fig.update_layout(barmode="stack")
    return _layout(fig, title="Manual fetches per day", x_title=DAY_AXIS, y_title="Manual fetches (count)",
                   empty=not per_day[kinds].to_numpy().any())


def cooldown_pressure_figure(pressure: pd.DataFrame) -> go.Figure:
    """Grouped bars per manual fetch: fetches run vs presses refused by the cooldown (all time)."""
    fig = go.Figure([
        go.Bar(x=pressure["fetch"], y=pressure[column], name=name, marker_color=colour)
        for column, name, colour in (("fetches", "Fetches run", PALETTE[0]),
                                     ("refusals", "Refused by cooldown", PALETTE[3]))
    ])
    fig.update_layout(barmode="group")
    return _layout(fig, title="Cooldown pressure (all time)", x_title="Manual fetch", y_title="Presses (count)",
                   empty=not (pressure["fetches"].any() or pressure["refusals"].any()))

"""Adoption figures for the Adoption page, built from `core.console.adoption` frames over one period. Every axis names
its unit; counts are thousands separated in labels, hovers and ticks."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from core.console.charts import finish

DAY_AXIS = "Day (UTC)"
PALETTE = ("#2457d6", "#7fa3f0", "#2e9d5b", "#e0a100")
COUNT_TICKS = ","  # 12,345


def _layout(fig: go.Figure, *, title: str, x_title: str, y_title: str, empty: bool) -> go.Figure:
    if empty:
        fig.update_yaxes(rangemode="nonnegative")  # no negative axis under nothing
    return finish(fig, title=title, x_title=x_title, y_title=y_title,
                  empty_text="Nothing recorded in these dates." if empty else None)


def _counts(fig: go.Figure) -> go.Figure:
    fig.update_yaxes(tickformat=COUNT_TICKS)
    return fig


def funnel_figure(funnel: pd.DataFrame) -> go.Figure:
    """Partners per activation stage, with the share of connected partners that got there."""
    fig = go.Figure(go.Funnel(
        y=funnel["stage"], x=funnel["partners"], texttemplate="%{value:,} (%{percentInitial:.0%})",
        marker_color=PALETTE[0], customdata=funnel[["median_from_previous", "median_from_connect"]],
        hovertemplate="%{y}: %{x:,} partners<br>median from previous stage: %{customdata[0]}<br>median from "
                      "connecting: %{customdata[1]}<extra></extra>",
    ))
    return _layout(fig, title="Activation funnel (HaloPSA as primary integration)", x_title="Partners (count)",
                   y_title="Stage", empty=not funnel["partners"].any())


def records_figure(per_day: pd.DataFrame) -> go.Figure:
    """Bars of records created per day, with a line of invoices read."""
    fig = go.Figure([
        go.Bar(x=per_day["day"], y=per_day["records_created"], name="Records created", marker_color=PALETTE[0],
               hovertemplate="%{x|%Y-%m-%d}: %{y:,} records created<extra></extra>"),
        go.Scatter(x=per_day["day"], y=per_day["invoices_read"], name="Invoices read", mode="lines+markers",
                   marker_color=PALETTE[3], hovertemplate="%{x|%Y-%m-%d}: %{y:,} invoices read<extra></extra>"),
    ])
    return _layout(_counts(fig), title="Records synced per day", x_title=DAY_AXIS, y_title="Records (count)",
                   empty=not (per_day["records_created"].any() or per_day["invoices_read"].any()))


def success_rate_figure(per_day: pd.DataFrame) -> go.Figure:
    """Share of finished runs that succeeded (fully or partially), per day; gaps are days without runs."""
    fig = go.Figure(go.Scatter(
        x=per_day["day"], y=per_day["success_rate"] * 100, mode="lines+markers", marker_color=PALETTE[2],
        customdata=per_day[["successful_runs", "finished_runs"]],
        hovertemplate="%{y:.0f} %<br>%{customdata[0]:,} of %{customdata[1]:,} runs<extra></extra>",
    ))
    fig.update_yaxes(range=[0, 105])
    return _layout(fig, title="Sync success rate per day", x_title=DAY_AXIS, y_title="Successful runs (% of finished)",
                   empty=not per_day["finished_runs"].any())


def manual_fetches_figure(per_day: pd.DataFrame) -> go.Figure:
    """Stacked bars: manual fetches started per day, one colour per fetch."""
    kinds = [column for column in per_day.columns if column != "day"]
    fig = go.Figure([
        go.Bar(x=per_day["day"], y=per_day[kind], name=kind, marker_color=colour,
               hovertemplate=f"%{{x|%Y-%m-%d}}: %{{y:,}} × {kind}<extra></extra>")
        for kind, colour in zip(kinds, PALETTE, strict=False)
    ])
    fig.update_layout(barmode="stack")
    return _layout(_counts(fig), title="Manual fetches per day", x_title=DAY_AXIS, y_title="Manual fetches (count)",
                   empty=not per_day[kinds].to_numpy().any())


def cooldown_pressure_figure(pressure: pd.DataFrame) -> go.Figure:
    """Grouped bars per manual fetch: fetches run vs presses refused by the cooldown, in the period."""
    fig = go.Figure([
        go.Bar(x=pressure["fetch"], y=pressure[column], name=name, marker_color=colour,
               hovertemplate=f"%{{x}}: %{{y:,}} {name.lower()}<extra></extra>")
        for column, name, colour in (("fetches", "Fetches run", PALETTE[0]),
                                     ("refusals", "Refused by cooldown", PALETTE[3]))
    ])
    fig.update_layout(barmode="group")
    return _layout(_counts(fig), title="Cooldown pressure", x_title="Manual fetch", y_title="Presses (count)",
                   empty=not (pressure["fetches"].any() or pressure["refusals"].any()))

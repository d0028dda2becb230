"""Invoice figures for the Invoices page, built from `core.console.invoices` frames. Every axis names its unit; amounts
in different currencies are drawn in panels of their own, never added up or set on one axis."""

from __future__ import annotations

from math import ceil

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from core.console.formatting import escape_plotly, money_text
from core.console.invoices import AGING_BUCKETS

# From "not yet due" green to "over 90 days" red, one colour per bucket of AGING_BUCKETS.
BUCKET_COLOURS = dict(zip(AGING_BUCKETS, ("#2e9d5b", "#e0a100", "#e07b00", "#d64545", "#8f1d1d"), strict=True))
PANELS_PER_ROW = 3
PANEL_HEIGHT = 320
MONEY_TICKS = ",.2~f"  # axis ticks thousands separated: 1,500,000 and 12.5


def aging_figure(aging: pd.DataFrame) -> go.Figure:
    """Bars: unpaid amount per aging bucket (days past the due date), with the invoice count on hover; one panel per
    currency of `aging` (as core.console.invoices labels them), in the frame's order."""
    currencies = list(dict.fromkeys(aging["currency"]))
    columns = max(1, min(len(currencies), PANELS_PER_ROW))
    rows = max(1, ceil(len(currencies) / columns))
    titles = [escape_plotly(currency) for currency in currencies] if len(currencies) > 1 else None
    fig = make_subplots(rows=rows, cols=columns, subplot_titles=titles, horizontal_spacing=0.08,
                        vertical_spacing=0.5 / rows)
    total = 0
    for position, currency in enumerate(currencies):
        unit = escape_plotly(currency)  # a code from HaloPSA: outside text
        panel = aging[aging["currency"] == currency]
        cents = [int(value * 100) for value in panel["amount_due"]]
        total += sum(abs(value) for value in cents)
        row, column = divmod(position, columns)
        fig.add_trace(go.Bar(
            x=panel["bucket"], name=unit, showlegend=False,
            y=[value / 100 for value in cents],  # bar heights only; the labels below are exact
            text=[money_text(value) for value in cents],
            customdata=panel["invoices"],
            marker_color=[BUCKET_COLOURS[bucket] for bucket in panel["bucket"]],
            hovertemplate=f"%{{x}}: %{{text}} {unit} across %{{customdata:,}} invoices<extra></extra>",
        ), row=row + 1, col=column + 1)
        fig.update_yaxes(title_text=f"Amount due ({unit})", tickformat=MONEY_TICKS, row=row + 1, col=column + 1)
        fig.update_xaxes(title_text="Days overdue (aging bucket)", row=row + 1, col=column + 1)
    fig.update_layout(title="Unpaid amount by days overdue", margin={"t": 60, "b": 40, "l": 60, "r": 10},
                      height=PANEL_HEIGHT * rows)
    if not currencies:
        fig.update_yaxes(title_text="Amount due")
        fig.update_xaxes(title_text="Days overdue (aging bucket)")
    if not total:
        fig.update_yaxes(rangemode="nonnegative")  # no negative axis under nothing
        fig.add_annotation(text="Nothing unpaid matches the filters.", showarrow=False, xref="paper", yref="paper",
                           x=0.5, y=0.5)
    return fig

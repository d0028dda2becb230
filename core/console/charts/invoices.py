"""Invoice figures for the Invoices page, built from `core.console.invoices` frames. Every axis names its unit."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from core.console.formatting import escape_plotly, money
from core.console.invoices import AGING_BUCKETS

# From "not yet due" green to "over 90 days" red, one colour per bucket of AGING_BUCKETS.
BUCKET_COLOURS = dict(zip(AGING_BUCKETS, ("#2e9d5b", "#e0a100", "#e07b00", "#d64545", "#8f1d1d"), strict=True))


def aging_figure(aging: pd.DataFrame, *, currency: str | None) -> go.Figure:
    """Bars: unpaid amount per aging bucket (days past the due date), with the invoice count on hover."""
    unit = escape_plotly(currency) if currency else "mixed currencies"  # a code from HaloPSA: outside text
    cents = [int(value * 100) for value in aging["amount_due"]]
    fig = go.Figure(go.Bar(
        x=aging["bucket"],
        y=[value / 100 for value in cents],  # bar heights only; the labels below are exact
        text=[money(value) for value in cents],
        customdata=aging["invoices"],
        marker_color=[BUCKET_COLOURS[bucket] for bucket in aging["bucket"]],
        hovertemplate=f"%{{x}}: %{{text}} {unit} across %{{customdata:,}} invoices<extra></extra>",
    ))
    fig.update_layout(title="Unpaid amount by days overdue", xaxis_title="Days overdue (aging bucket)",
                      yaxis_title=f"Amount due ({unit})", margin={"t": 50, "b": 40, "l": 60, "r": 10}, height=320)
    if not sum(cents):
        fig.add_annotation(text="Nothing unpaid matches the filters.", showarrow=False, xref="paper", yref="paper",
                           x=0.5, y=0.5)
    return fig

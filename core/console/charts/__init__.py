"""Plotly figures built from core read models (no Streamlit here)."""

from __future__ import annotations

import plotly.graph_objects as go


def finish(fig: go.Figure, *, title: str, x_title: str, y_title: str, empty_text: str | None) -> go.Figure:
    """The layout every console chart shares: title, axis titles with units, and a note when there is no data."""
    fig.update_layout(title=title, xaxis_title=x_title, yaxis_title=y_title, legend_title_text=None,
                      margin={"t": 50, "b": 40, "l": 50, "r": 10}, height=320)
    if empty_text:
        fig.add_annotation(text=empty_text, showarrow=False, xref="paper", yref="paper", x=0.5, y=0.5)
    return fig

"""The Overview's "Alerts" expander: where issue alerts go and the latest deliveries (core.console.alert_config)."""

from __future__ import annotations

import streamlit as st

from core.access import Principal
from core.console import alert_config
from core.console.formatting import escape_markdown
from ui import components, resources

DELIVERY_COLUMNS = {
    "at": st.column_config.DatetimeColumn("Issue changed (UTC)", format="YYYY-MM-DD HH:mm", width=140),
    "partner": st.column_config.TextColumn("Partner", width=150),
    "issue": st.column_config.TextColumn("Issue", width=130),
    "change": st.column_config.TextColumn("Change", width=80),
    "channel": st.column_config.TextColumn("Channel", width=80),
    "state": st.column_config.TextColumn("State", width=80),
    "attempts": st.column_config.NumberColumn("Tries", width=60),
    "when": st.column_config.TextColumn("When", width=170),
    "error": st.column_config.TextColumn("Last error", width=320),
}


def render(principal: Principal) -> None:
    with components.shown_errors():
        view = alert_config.alerts_view(resources.get_engine(), principal, settings=resources.get_settings())
    with st.expander("Alerts", expanded=False):
        for channel in view.channels:  # the settings are the operator's text: drawn escaped all the same
            line = f"**{channel.name}**: {escape_markdown(channel.summary)}"
            st.markdown(line + (f" Sent for {escape_markdown(channel.types)}." if channel.configured else ""))
        if view.deliveries.empty:
            st.caption("No alert has been sent yet." if view.configured else
                       "Nothing is sent until a channel is configured.")
        else:
            st.dataframe(view.deliveries, hide_index=True, key="overview.alerts", column_config=DELIVERY_COLUMNS,
                         column_order=list(DELIVERY_COLUMNS))

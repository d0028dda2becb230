"""The Overview's "All partners" table: every partner's sync health, filtered by role, freshness and a search
(core.console.overview filters and words it)."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from core.console import overview as overview_screen
from ui import components

# what needs reading first fits the screen; the rest scrolls in from the right
COLUMNS = {
    "partner": st.column_config.TextColumn("Partner", width=185),
    "freshness": st.column_config.TextColumn("Freshness", width=90),
    "last_success_ago": st.column_config.TextColumn("Since", help="Time since the last successful sync", width=90),
    "latest_run": st.column_config.TextColumn("Latest run", width=85),
    "missing_permissions": st.column_config.TextColumn("Missing permissions", width=210),
    "open_record_errors": st.column_config.NumberColumn("Open record errors", width=130),
    "role": st.column_config.TextColumn("Role", help="Integration role", width=85),
    "status": st.column_config.TextColumn("Partner status", width=110),
    "last_success_at": st.column_config.TextColumn("Last success (UTC)", width=140),
    "fetch_new_data": st.column_config.TextColumn("Fetch new data", width=120),
    "fetch_unpaid": st.column_config.TextColumn("Fetch unpaid invoices", width=150),
}


def partner_table(table: pd.DataFrame) -> None:
    st.subheader("All partners")
    role_at, state_at, search_at = st.columns([1, 2, 2])
    roles = role_at.multiselect("Integration role", overview_screen.ROLE_CHOICES, key="overview.role")
    states = state_at.multiselect("Freshness", [state.value for state in overview_screen.Freshness],
                                  key="overview.freshness")
    search = components.text_input(search_at, "Search", field="search", placeholder="Partner, status or permission",
                                   key="overview.search")
    with components.shown_errors():
        shown = overview_screen.filter_overview(table, roles=roles, states=states, search=search)
    st.caption(f"{len(shown):,} of {len(table):,} partners; click a column header to sort. {overview_screen.LEGEND}")
    st.dataframe(shown, hide_index=True, key="overview.table", column_order=list(COLUMNS), column_config=COLUMNS)

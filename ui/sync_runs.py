"""The Syncs page's run history: the table of runs with its pager, and the detail of one run (counts, the error,
the records that could not be read)."""

from __future__ import annotations

import streamlit as st

from core.console import syncs as syncs_screen
from core.console.formatting import escape_markdown

COUNT_WIDTH = 82
# the run table leads with what happened; who, why, requests and the error scroll in from the right
RUN_COLUMNS = {
    "Run": st.column_config.NumberColumn("Run", width=60),
    "Kind": st.column_config.TextColumn("Kind", width=150),
    "Status": st.column_config.TextColumn("Status", width=90),
    "Started (UTC)": st.column_config.DatetimeColumn("Started (UTC)", format="YYYY-MM-DD HH:mm:ss", width=150),
    "Duration (s)": st.column_config.NumberColumn("Duration (s)", format="%.2f", width=95),
    **{name: st.column_config.NumberColumn(name, width=COUNT_WIDTH)
       for name in ("Created", "Updated", "Unchanged", "Rejected")},
    "By": st.column_config.TextColumn("By", width=170),
    "Trigger": st.column_config.TextColumn("Trigger", width=85),
    "Requests": st.column_config.NumberColumn("Requests", width=COUNT_WIDTH),
    "Error": st.column_config.TextColumn("Error", width="large"),
}


def requested_page() -> int:
    """The 0-based page of runs the pager under the table asks for (its value from the previous run)."""
    return int(st.session_state.get("syncs.page", 1)) - 1


def runs_table(page: syncs_screen.RunPage) -> None:
    """One page of runs and the pager under it."""
    st.session_state["syncs.page"] = page.page + 1  # clamped when the filters leave fewer pages
    st.dataframe(page.rows, hide_index=True, key="syncs.runs", column_order=list(RUN_COLUMNS),
                 column_config=RUN_COLUMNS)
    st.columns([1, 3])[0].number_input(f"Page (of {page.pages}; {page.total:,} runs)", min_value=1,
                                       max_value=page.pages, key="syncs.page")


def run_detail(detail: syncs_screen.RunDetail) -> None:
    st.caption(escape_markdown(detail.headline))
    for column, (name, value) in zip(st.columns(len(detail.counts)), detail.counts.items(), strict=True):
        column.metric(name, f"{value:,}")
    if detail.error:
        st.error(escape_markdown(detail.error))
    if detail.errors_total:
        st.caption(f"{detail.errors_total:,} records could not be read; the first {len(detail.errors):,} with why:")
        st.dataframe(detail.errors, hide_index=True, key="syncs.record_errors")
    else:
        st.caption("Every record in this run was read.")

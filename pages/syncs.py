"""Syncs: freshness, the two manual fetches with live cooldowns (ui.fetch_buttons), daily sync-history charts, the
run table and run detail (ui.sync_runs), and the reconciliation with HaloPSA (ui.reconciliation, with the partners
with drift)."""

import streamlit as st

from core.console import syncs as syncs_screen
from core.console.charts import sync_history
from core.console.formatting import escape_markdown
from ui import auth, components, fetch_buttons, reconciliation, resources, sync_runs

PAGE_SIZE = 50

principal = auth.require_page("syncs")
engine = resources.get_engine()
partner_id = components.require_partner(principal)
st.title("Syncs")
freshness_at = st.empty()  # filled after a requested fetch was queued, so the line already counts it
fetch_buttons.manual_fetches(engine, principal, partner_id)
with freshness_at.container():
    components.freshness(principal, partner_id)

st.subheader("History")
kinds, statuses, dates = st.columns(3)
filters = syncs_screen.RunFilter.from_inputs(
    kinds.multiselect("Kind", list(syncs_screen.KIND_LABELS), format_func=syncs_screen.KIND_LABELS.__getitem__,
                      key="syncs.kinds"),
    statuses.multiselect("Status", list(syncs_screen.STATUS_LABELS), format_func=syncs_screen.STATUS_LABELS.__getitem__,
                         key="syncs.statuses"),
    dates.date_input("Started between (UTC days)", value=[], key="syncs.dates"),  # a range, none picked
)
charts = syncs_screen.chart_data(engine, principal, partner_id, filters=filters)
st.caption(escape_markdown(charts.scope))
figures = {"Runs per day": sync_history.runs_per_day_figure(charts),
           "Records per day": sync_history.records_per_day_figure(charts),
           "Duration per day": sync_history.duration_per_day_figure(charts)}
for tab, (name, figure) in zip(st.tabs(list(figures)), figures.items(), strict=True):
    tab.plotly_chart(figure, key=f"syncs.chart.{name}")

page = syncs_screen.runs_page(engine, principal, partner_id, filters=filters, page=sync_runs.requested_page(),
                              page_size=PAGE_SIZE)
sync_runs.runs_table(page)
sync_runs.pick_run(engine, principal, partner_id, page)
reconciliation.section(engine, principal, partner_id)

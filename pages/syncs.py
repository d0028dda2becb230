"""Syncs: freshness, the two manual fetches with live cooldowns (ui.fetch_buttons), sync-history charts, the run
table and run detail (ui.sync_runs)."""

import streamlit as st

from core.console import syncs as syncs_screen
from core.console.charts import sync_history
from ui import auth, components, fetch_buttons, resources, sync_runs

PAGE_SIZE = 50

principal = auth.require_page("syncs")
partner_id = components.require_partner(principal)
engine = resources.get_engine()
st.title("Syncs")
freshness_at = st.empty()  # filled after a requested fetch ran, so the line already counts it
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
figures = {"Runs per day": sync_history.runs_over_time_figure(charts.daily),
           "Records per run": sync_history.records_per_run_figure(charts.per_run),
           "Duration per run": sync_history.duration_per_run_figure(charts.per_run)}
for tab, (name, figure) in zip(st.tabs(list(figures)), figures.items(), strict=True):
    tab.plotly_chart(figure, key=f"syncs.chart.{name}")

page = syncs_screen.runs_page(engine, principal, partner_id, filters=filters, page=sync_runs.requested_page(),
                         page_size=PAGE_SIZE)
sync_runs.runs_table(page)
choices = page.choices
if choices and (run_id := st.selectbox("Run detail", list(choices), format_func=choices.__getitem__,
                                       key="syncs.run")) is not None:
    sync_runs.run_detail(syncs_screen.run_detail(engine, principal, partner_id, run_id))

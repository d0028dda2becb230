"""Adoption (product managers and customer success): the activation funnel, sync volume and reliability, manual
fetch usage and cooldown pressure. Aggregates only, from core.console.adoption: no invoice rows and no secrets."""

import streamlit as st

from core.console import adoption
from core.console.charts import adoption as charts
from core.console.formatting import escape_markdown
from ui import auth, components, resources

PERIODS = {7: "Last 7 days", 30: "Last 30 days", 90: "Last 90 days"}

principal = auth.require_page("adoption")
st.title("Adoption")
days = st.radio("Period", list(PERIODS), index=1, format_func=PERIODS.get, horizontal=True, key="adoption.days")
with components.shown_errors():
    report = adoption.report(resources.get_engine(), principal, now=resources.now(), days=days)

tiles = report.tiles()
TILES_PER_ROW = 3  # six tiles in one row cut their labels short
for start in range(0, len(tiles), TILES_PER_ROW):
    row = tiles[start:start + TILES_PER_ROW]
    for column, tile in zip(st.columns(TILES_PER_ROW), row, strict=False):
        column.metric(tile.label, tile.value, help=escape_markdown(tile.help))  # the help names a currency

st.subheader("Activation funnel")
st.plotly_chart(charts.funnel_figure(report.funnel), key="adoption.funnel_chart")
st.dataframe(report.funnel, hide_index=True, key="adoption.funnel",
             column_order=["stage", "partners", "median_from_previous", "stopped_here"],
             column_config={"stage": st.column_config.TextColumn("Stage", width=180),
                            "partners": st.column_config.NumberColumn("Partners", width=90),
                            "median_from_previous": st.column_config.TextColumn(
                                "Median time from previous stage", width=220),
                            "stopped_here": st.column_config.TextColumn("Stopped at this stage", width="large")})

st.subheader("Syncs")
left, right = st.columns(2)
left.plotly_chart(charts.records_figure(report.records), key="adoption.records_chart")
right.plotly_chart(charts.success_rate_figure(report.success), key="adoption.success_chart")

st.subheader("Manual fetches and cooldowns")
left, right = st.columns(2)
left.plotly_chart(charts.manual_fetches_figure(report.manual), key="adoption.manual_chart")
right.plotly_chart(charts.cooldown_pressure_figure(report.pressure), key="adoption.pressure_chart")
st.dataframe(report.pressure, hide_index=True, key="adoption.pressure", column_config={
    "fetch": "Manual fetch", "fetches": "Fetches run", "refusals": "Refused by cooldown",
    "refusals_per_fetch": st.column_config.NumberColumn("Refusals per fetch", format="%.2f"),
    "empty_fetches": "Fetches that found nothing new"})

st.subheader("Unpaid value on auto-pay")
st.dataframe(report.coverage, hide_index=True, key="adoption.coverage",
             column_order=["currency", "unpaid", "covered", "share"], column_config={
                 "currency": "Currency", "unpaid": "Unpaid", "covered": "On an enabled auto-pay rule",
                 "share": st.column_config.ProgressColumn("Share", format="percent", min_value=0, max_value=1)})

"""Adoption (product managers and customer success): week-over-week change, the activation funnel, a per-partner
breakdown (with its CSV), sync volume and reliability, manual fetch usage and cooldown pressure, over the dates picked;
and the unpaid value on auto-pay per currency. Aggregates only, from core.console.adoption: no invoice rows and no
secrets."""

from typing import Any

import streamlit as st

from core.console import adoption, exports
from core.console.charts import adoption as charts
from core.console.formatting import TABLE_COUNT_FORMAT, escape_markdown
from ui import auth, components, resources

TILES_PER_ROW = 4  # more tiles in one row cut their labels short


def count(label: str) -> Any:
    """A table column of counts, thousands separated."""
    return st.column_config.NumberColumn(label, format=TABLE_COUNT_FORMAT)


principal = auth.require_page("adoption")
engine = resources.get_engine()
st.title("Adoption")
today = resources.now().date()
preset_at, dates_at = st.columns([3, 2])
preset = preset_at.radio("Period", list(adoption.PRESETS), index=1, format_func=adoption.PRESETS.get,
                         horizontal=True, key="adoption.days")
picked = dates_at.date_input("Dates (UTC)", value=(today.replace(day=1), today), max_value=today, format="YYYY-MM-DD",
                             key="adoption.dates") if preset == adoption.CUSTOM else ()
with components.shown_errors():
    dates = [day for day in (picked if isinstance(picked, tuple) else (picked,)) if day is not None]
    period = adoption.Period.chosen(today, preset, dates)
    report = adoption.report(engine, principal, period)
notes = report.notes()
st.caption(notes["dates"])

tiles = report.tiles()
for start in range(0, len(tiles), TILES_PER_ROW):
    for column, tile in zip(st.columns(TILES_PER_ROW), tiles[start:start + TILES_PER_ROW], strict=False):
        # labels and help name currencies and partners' counts: Markdown, so escaped
        column.metric(escape_markdown(tile.label), tile.value, help=escape_markdown(tile.help))

st.subheader("Week over week")
st.caption(notes["weekly"])
st.dataframe(report.weekly, hide_index=True, key="adoption.weekly", column_config={
    "measure": st.column_config.TextColumn("Measure", width=200), "this_week": "Final 7 days",
    "previous_week": "7 days before", "change": "Change"})

st.subheader("Activation funnel")
st.caption(notes["funnel"])
st.plotly_chart(charts.funnel_figure(report.funnel), key="adoption.funnel_chart")
st.dataframe(report.funnel, hide_index=True, key="adoption.funnel",
             column_order=["stage", "partners", "median_from_previous", "median_from_connect", "stopped_here"],
             column_config={"stage": st.column_config.TextColumn("Stage", width=180),
                            "partners": count("Partners"),
                            "median_from_previous": st.column_config.TextColumn(
                                "Median time from previous stage", width=200),
                            "median_from_connect": st.column_config.TextColumn(
                                "Median time from connecting", width=200),
                            "stopped_here": st.column_config.TextColumn("Stopped at this stage", width="large")})

st.subheader("Per partner")
st.caption(notes["partners"])
st.dataframe(report.partners, hide_index=True, key="adoption.partners",
             column_order=["partner", "integration", "connected_on", "to_first_sync", "to_first_rule",
                           "enabled_rules", "runs_finished", "success_rate", "records_created", "manual_fetches",
                           "cooldown_refusals"],
             column_config={"partner": st.column_config.TextColumn("Partner", width=200),
                            "integration": "Integration", "connected_on": st.column_config.DateColumn("Connected"),
                            "to_first_sync": "Connect to first sync",
                            "to_first_rule": "Connect to first mapped subtype",
                            "enabled_rules": count("Enabled auto-pay rules"),
                            "runs_finished": count("Runs finished"),
                            "success_rate": st.column_config.NumberColumn("Success rate", format="percent"),
                            "records_created": count("Records created"),
                            "manual_fetches": count("Manual fetches"),
                            "cooldown_refusals": count("Cooldown refusals")})
components.csv_download(
    "adoption.download", f"adoption-per-partner-{period.first:%Y%m%d}-{period.last:%Y%m%d}.csv",
    rows=len(report.partners),
    refusal=exports.download_refusal(engine, principal.user, rows=len(report.partners), now=resources.now()),
    data=lambda: adoption.export_csv(engine, principal, period, now=resources.now(), throttled=True).data)

st.subheader("Syncs")
left, right = st.columns(2)
left.plotly_chart(charts.records_figure(report.records), key="adoption.records_chart")
right.plotly_chart(charts.success_rate_figure(report.success), key="adoption.success_chart")

st.subheader("Manual fetches and cooldowns")
left, right = st.columns(2)
left.plotly_chart(charts.manual_fetches_figure(report.manual), key="adoption.manual_chart")
right.plotly_chart(charts.cooldown_pressure_figure(report.pressure), key="adoption.pressure_chart")
st.dataframe(report.pressure, hide_index=True, key="adoption.pressure", column_config={
    "fetch": "Manual fetch", "fetches": count("Fetches run"),
    "refusals": count("Refused by cooldown"),
    "refusals_per_fetch": st.column_config.NumberColumn("Refusals per fetch", format="%.2f"),
    "empty_fetches": count("Fetches that found nothing new")})

st.subheader("Unpaid value on auto-pay")
st.caption(notes["coverage"])
st.dataframe(report.coverage, hide_index=True, key="adoption.coverage",
             column_order=["currency", "invoices", "unpaid", "covered", "share"], column_config={
                 "currency": "Currency", "invoices": count("Unpaid invoices"), "unpaid": "Unpaid",
                 "covered": "On an enabled auto-pay rule",
                 "share": st.column_config.ProgressColumn("Share", format="percent", min_value=0, max_value=1)})

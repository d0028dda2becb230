"""Adoption (product managers and customer success): week-over-week change, the activation funnel, a per-partner
breakdown (with its CSV), sync volume and reliability, manual fetch usage and cooldown pressure, over the dates picked;
and the unpaid value on auto-pay per currency. Aggregates only, from core.console.adoption: no invoice rows and no
secrets. Its tables are ui.adoption_tables."""

import streamlit as st

from core.console import adoption
from core.console.charts import adoption as charts
from core.console.formatting import escape_markdown
from ui import adoption_tables, auth, components, resources

TILES_PER_ROW = 4  # more tiles in one row cut their labels short

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
adoption_tables.weekly(report)

st.subheader("Activation funnel")
st.caption(notes["funnel"])
st.plotly_chart(charts.funnel_figure(report.funnel), key="adoption.funnel_chart")
adoption_tables.funnel(report)

st.subheader("Per partner")
st.caption(notes["partners"])
adoption_tables.partners(engine, principal, report)

st.subheader("Syncs")
left, right = st.columns(2)
left.plotly_chart(charts.records_figure(report.records), key="adoption.records_chart")
right.plotly_chart(charts.success_rate_figure(report.success), key="adoption.success_chart")

st.subheader("Manual fetches and cooldowns")
left, right = st.columns(2)
left.plotly_chart(charts.manual_fetches_figure(report.manual), key="adoption.manual_chart")
right.plotly_chart(charts.cooldown_pressure_figure(report.pressure), key="adoption.pressure_chart")
adoption_tables.pressure(report)

st.subheader("Unpaid value on auto-pay")
st.caption(notes["coverage"])
adoption_tables.coverage(report)

"""Syncs: freshness, the two manual fetches with live cooldowns, sync-history charts, the run table and run detail."""

import streamlit as st

from core.actions import fetches as actions
from core.console import syncs as history
from core.console.charts import sync_history
from ui import auth, components, resources

REQUEST_KEY = "syncs.request"
PAGE_SIZE = 50
COUNT = {"width": 82}
# the run table leads with what happened; who, why, requests and the error scroll in from the right
RUN_COLUMNS = {
    "Run": st.column_config.NumberColumn("Run", width=60),
    "Kind": st.column_config.TextColumn("Kind", width=150),
    "Status": st.column_config.TextColumn("Status", width=90),
    "Started (UTC)": st.column_config.DatetimeColumn("Started (UTC)", format="YYYY-MM-DD HH:mm:ss", width=150),
    "Duration (s)": st.column_config.NumberColumn("Duration (s)", format="%.2f", width=95),
    **{name: st.column_config.NumberColumn(name, **COUNT) for name in ("Created", "Updated", "Unchanged", "Rejected")},
    "By": st.column_config.TextColumn("By", width=170),
    "Trigger": st.column_config.TextColumn("Trigger", width=85),
    "Requests": st.column_config.NumberColumn("Requests", **COUNT),
    "Error": st.column_config.TextColumn("Error", width="large"),
}

principal = auth.require_page("syncs")
partner_id = components.require_partner(principal)
engine = resources.get_engine()
st.title("Syncs")
freshness_at = st.empty()  # filled after a requested fetch ran, so the line already counts it


@st.fragment(run_every="1s")
def fetch_buttons() -> None:
    """Display only (every open tab ticks): a click hands the request to the page body, which starts the fetch."""
    states = history.manual_fetch_states(engine, principal, partner_id, now=resources.now())
    for column, state in zip(st.columns(len(states)), states, strict=True):
        with column:
            if st.button(state.label, key=f"syncs.{state.kind}", type="primary", disabled=state.locked):
                st.session_state[REQUEST_KEY] = state.kind
                st.rerun(scope="app")
            st.caption(state.availability)
            st.caption(state.last_run)


allowed, reason = actions.manual_fetch_allowed(engine, partner_id)
if allowed:
    buttons, outcome = st.container(), st.container()
    if requested := st.session_state.pop(REQUEST_KEY, None):
        with outcome:
            components.run_with_status(history.KIND_LABELS[requested], lambda progress: actions.start_manual_fetch(
                engine, principal, partner_id=partner_id, kind=requested, now=resources.now(),
                settings=resources.get_settings(), client_factory=resources.get_client_factory(), progress=progress))
    with buttons:  # drawn after the fetch, so the countdown it just started shows at once
        fetch_buttons()
else:
    st.info(reason)
with freshness_at.container():
    components.freshness(principal, partner_id)

st.subheader("History")
kinds, statuses, dates = st.columns(3)
filters = history.RunFilter.from_inputs(
    kinds.multiselect("Kind", list(history.KIND_LABELS), format_func=history.KIND_LABELS.get, key="syncs.kinds"),
    statuses.multiselect("Status", list(history.STATUS_LABELS), format_func=history.STATUS_LABELS.get,
                         key="syncs.statuses"),
    dates.date_input("Started between (UTC days)", value=(), key="syncs.dates"),
)
charts = history.chart_data(engine, principal, partner_id, filters=filters)
figures = {"Runs per day": sync_history.runs_over_time_figure(charts.daily),
           "Records per run": sync_history.records_per_run_figure(charts.per_run),
           "Duration per run": sync_history.duration_per_run_figure(charts.per_run)}
for tab, (name, figure) in zip(st.tabs(list(figures)), figures.items(), strict=True):
    tab.plotly_chart(figure, key=f"syncs.chart.{name}")

page = history.runs_page(engine, principal, partner_id, filters=filters,
                         page=st.session_state.get("syncs.page", 1) - 1, page_size=PAGE_SIZE)
st.session_state["syncs.page"] = page.page + 1  # clamped when the filters leave fewer pages
st.dataframe(page.rows, hide_index=True, key="syncs.runs", column_order=list(RUN_COLUMNS), column_config=RUN_COLUMNS)
st.columns([1, 3])[0].number_input(f"Page (of {page.pages}; {page.total:,} runs)", min_value=1, max_value=page.pages,
                                   key="syncs.page")

if page.choices:
    run_id = st.selectbox("Run detail", list(page.choices), format_func=page.choices.get, key="syncs.run")
    detail = history.run_detail(engine, principal, partner_id, run_id)
    st.caption(detail.headline)
    for column, (name, value) in zip(st.columns(len(detail.counts)), detail.counts.items(), strict=True):
        column.metric(name, f"{value:,}")
    if detail.error:
        st.error(detail.error)
    if detail.errors_total:
        st.caption(f"{detail.errors_total:,} records could not be read; the first {len(detail.errors):,} with why:")
        st.dataframe(detail.errors, hide_index=True, key="syncs.record_errors")
    else:
        st.caption("Every record in this run was read.")

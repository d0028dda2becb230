"""Overview (customer success): every partner's sync health in one sortable, filterable table, and the worklist of
partners that need a person. All numbers and rules come from core.fleet."""

import streamlit as st

from core import fleet
from core.errors import ConsoleError
from ui import auth, resources

principal = auth.require_page("overview")
engine, now = resources.get_engine(), resources.now()
st.title("Partner overview")
try:
    table = fleet.overview(engine, principal, now=now, settings=resources.get_settings())
    todo = fleet.worklist(engine, principal, now=now)
except ConsoleError as exc:
    st.error(exc.message)
    st.stop()

counts = fleet.freshness_counts(table)
tiles = [("Partners", len(table)), ("On time", counts["on time"]), ("Late", counts["late"]),
         ("Failing", counts["failing"]), ("Need a person", todo["partner_id"].nunique())]
for column, (label, value) in zip(st.columns(len(tiles)), tiles, strict=True):
    column.metric(label, value)

st.subheader("Needs a person")
if todo.empty:
    st.success("Every partner is syncing on time with nothing to follow up.")
else:
    st.dataframe(todo, hide_index=True, key="overview.worklist", column_order=fleet.WORKLIST_COLUMNS[1:],
                 column_config={"partner": "Partner", "reason": "Reason",
                                "detail": st.column_config.TextColumn("What we found", width="large"),
                                "next_step": st.column_config.TextColumn("Suggested next step", width="large")})

st.subheader("All partners")
role_at, state_at, search_at = st.columns([1, 2, 2])
roles = role_at.multiselect("Integration role", fleet.ROLE_CHOICES, key="overview.role")
states = state_at.multiselect("Freshness", [state.value for state in fleet.Freshness], key="overview.freshness")
search = search_at.text_input("Search", placeholder="Partner, status or permission", key="overview.search")
shown = fleet.filter_overview(table, roles=roles, states=states, search=search)
st.caption(f"{len(shown)} of {len(table)} partners; click a column header to sort. {fleet.LEGEND}")
st.dataframe(shown, hide_index=True, key="overview.table", column_order=fleet.OVERVIEW_COLUMNS[1:], column_config={
    "partner": "Partner", "role": "Integration role", "status": "Partner status",
    "last_success_at": st.column_config.DatetimeColumn("Last successful sync (UTC)", format="YYYY-MM-DD HH:mm"),
    "last_success_ago": "Since", "freshness": "Freshness", "latest_run": "Latest run",
    "open_record_errors": st.column_config.NumberColumn("Open record errors"),
    "missing_permissions": "Missing permissions", "fetch_new_data": "Fetch new data",
    "fetch_unpaid": "Fetch unpaid invoices"})

"""Overview (customer success): every partner's sync health in one sortable, filterable table, and the worklist of
partners that need a person. All numbers and rules come from core.console.overview."""

import streamlit as st

from core.console import overview as overview_screen
from ui import alerts as alerts_panel
from ui import auth, components, resources

principal = auth.require_page("overview")
engine, now = resources.get_engine(), resources.now()
st.title("Partner overview")
with components.shown_errors():
    table = overview_screen.overview(engine, principal, now=now, settings=resources.get_settings())
    todo = overview_screen.worklist(engine, principal, now=now)

counts = overview_screen.freshness_counts(table)
tiles = [("Partners", len(table)), ("On time", counts["on time"]), ("Late", counts["late"]),
         ("Failing", counts["failing"]), ("Need a person", todo["partner_id"].nunique())]
for column, (label, value) in zip(st.columns(len(tiles)), tiles, strict=True):
    column.metric(label, value)

st.subheader("Needs a person")
if todo.empty:
    st.success("Every partner is syncing on time with nothing to follow up.")
else:
    # rows taller than 4rem let Streamlit wrap the sentences instead of cutting them at the column edge
    st.dataframe(todo, hide_index=True, key="overview.worklist", column_order=overview_screen.WORKLIST_COLUMNS[1:],
                 row_height=84, height=min(len(todo), 8) * 84 + 38,  # a short list shows whole, no inner scrolling
                 column_config={"partner": st.column_config.TextColumn("Partner", width=160),
                                "reason": st.column_config.TextColumn("Reason", width=160),
                                "detail": st.column_config.TextColumn("What we found", width=310),
                                "next_step": st.column_config.TextColumn("Suggested next step", width=310)})

st.subheader("All partners")
role_at, state_at, search_at = st.columns([1, 2, 2])
roles = role_at.multiselect("Integration role", overview_screen.ROLE_CHOICES, key="overview.role")
states = state_at.multiselect("Freshness", [state.value for state in overview_screen.Freshness],
                              key="overview.freshness")
search = components.text_input(search_at, "Search", field="search", placeholder="Partner, status or permission",
                               key="overview.search")
with components.shown_errors():
    shown = overview_screen.filter_overview(table, roles=roles, states=states, search=search)
st.caption(f"{len(shown)} of {len(table)} partners; click a column header to sort. {overview_screen.LEGEND}")
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
    "last_success_at": st.column_config.DatetimeColumn("Last success (UTC)", format="YYYY-MM-DD HH:mm", width=140),
    "fetch_new_data": st.column_config.TextColumn("Fetch new data", width=120),
    "fetch_unpaid": st.column_config.TextColumn("Fetch unpaid invoices", width=150),
}
st.dataframe(shown, hide_index=True, key="overview.table", column_order=list(COLUMNS), column_config=COLUMNS)
alerts_panel.render(principal)

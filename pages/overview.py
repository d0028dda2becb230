"""Overview (customer success): tiles that partition the fleet, the issues worklist (by severity then age, each
linked to the page and partner that fixes it, snoozable), what resolved lately, and every partner's sync health in
one sortable, filterable table. All numbers, orders and words come from core.console.overview."""

from datetime import UTC, datetime, timedelta

import streamlit as st

from core.actions import issues as issue_actions
from core.console import overview as overview_screen
from core.console.formatting import escape_markdown
from ui import alerts as alerts_panel
from ui import auth, components, resources

principal = auth.require_page("overview")
engine, now = resources.get_engine(), resources.now()
st.title("Partner overview")
with components.shown_errors():
    table = overview_screen.overview(engine, principal, now=now, settings=resources.get_settings())
    open_issues = overview_screen.issues(engine, principal, now=now)
    resolved = overview_screen.recently_resolved(engine, principal, now=now)

tiles = overview_screen.fleet_tiles(table)
labels = [("Partners", len(table))] + [(standing.capitalize(), value) for standing, value in tiles.items()]
for column, (label, value) in zip(st.columns(len(labels)), labels, strict=True):
    column.metric(label, f"{value:,}")
st.caption("Every partner counts in exactly one tile after Partners: never synced means no successful sync ever "
           "(a partner without a connection included); not syncing by design means HaloPSA is its secondary "
           "integration.")

st.subheader(f"Issues ({len(open_issues):,} open)")
severity_at, owner_at, type_at = st.columns(3)
severities = severity_at.multiselect("Severity", overview_screen.SEVERITY_CHOICES, key="overview.severity")
owners = owner_at.multiselect("Owner", overview_screen.OWNER_CHOICES, key="overview.owner")
types = type_at.multiselect("Type", overview_screen.TYPE_CHOICES, key="overview.type")
shown_issues = overview_screen.filter_issues(open_issues, severities=severities, owners=owners, types=types)
if open_issues.empty:
    st.success("No open issues: every partner is syncing with nothing to follow up.")
else:
    st.caption(f"{len(shown_issues):,} of {len(open_issues):,} open issues. {overview_screen.ISSUES_LEGEND}")
    # rows taller than 4rem let Streamlit wrap the sentences instead of cutting them at the column edge
    st.dataframe(shown_issues, hide_index=True, key="overview.issues", row_height=84,
                 height=min(max(len(shown_issues), 1), 8) * 84 + 38,  # a short list shows whole
                 column_order=["severity", "type", "owner", "partner", "found", "first_seen", "last_seen",
                               "next_step", "link", "snoozed"],
                 column_config={
                     "severity": st.column_config.TextColumn("Severity", width=80),
                     "type": st.column_config.TextColumn("Type", width=140),
                     "owner": st.column_config.TextColumn("Owner", help="Who can fix it", width=90),
                     "partner": st.column_config.TextColumn("Partner", width=150),
                     "found": st.column_config.TextColumn("What we found", width=300),
                     "first_seen": st.column_config.DatetimeColumn("First seen (UTC)", format="YYYY-MM-DD HH:mm",
                                                                   width=130),
                     "last_seen": st.column_config.DatetimeColumn("Last seen (UTC)", format="YYYY-MM-DD HH:mm",
                                                                  width=130),
                     "next_step": st.column_config.TextColumn("Next step", width=300),
                     "link": st.column_config.LinkColumn("Fix it on", display_text=r"^/([a-z]+)", width=100,
                                                         help="The page (and partner) that fixes it"),
                     "snoozed": st.column_config.TextColumn("Snoozed", width=220),
                 })
with st.expander("Issue types: severity, owner and clean period"):
    st.caption("An issue resolves itself once its problem has not been seen for its clean period.")
    st.dataframe(overview_screen.issue_types(), hide_index=True, key="overview.issue_types",
                 column_config={"type": "Type", "severity": "Severity", "escalates": "Escalates",
                                "owner": "Owner", "resolves_after": "Resolves after", "fixed_on": "Fixed on"})

if not open_issues.empty:
    st.subheader("Act on an issue")
    choices = overview_screen.issue_choices(open_issues)
    picked = st.selectbox("Issue", list(choices), format_func=choices.__getitem__, key="overview.issue")
    issue = overview_screen.picked_issue(open_issues, picked)
    st.page_link(issue.page_path, label=issue.fix_label, icon=":material/arrow_forward:",
                 query_params=None if issue.partner_id is None else {"partner": str(issue.partner_id)})
    if issue.snoozed:
        st.caption(f"This issue is {escape_markdown(issue.snoozed)}.")
        st.button("End the snooze", key="overview.unsnooze", on_click=components.act, args=(
            "Snooze ended: the issue is back in its place.",
            lambda: issue_actions.unsnooze(engine, principal, issue.issue_id, now=now)))

    def snooze() -> None:
        """The form's callback: snooze the picked issue with what the form holds."""
        until = datetime.combine(st.session_state["overview.snooze_day"], st.session_state["overview.snooze_time"],
                                 UTC)
        components.act(f"Snoozed until {until:%Y-%m-%d %H:%M} UTC.", lambda: issue_actions.snooze(
            engine, principal, issue.issue_id, until, st.session_state["overview.snooze_reason"], now=now))

    with st.form("overview.snooze", clear_on_submit=True, border=False):
        day_at, time_at, reason_at = st.columns([1, 1, 3])
        tomorrow = now + timedelta(days=1)
        day_at.date_input("Snooze until (UTC)", value=tomorrow.date(), min_value=now.date(),
                          max_value=(now + issue_actions.MAX_SNOOZE).date(), key="overview.snooze_day")
        time_at.time_input("Time (UTC)", value=tomorrow.time().replace(second=0, microsecond=0),
                           key="overview.snooze_time")
        components.text_input(reason_at, "Reason", field="snooze_reason", key="overview.snooze_reason",
                              placeholder="Why it can wait (shown next to the issue)")
        st.form_submit_button("Snooze", key="overview.snooze_submit", on_click=snooze)

st.subheader("Recently resolved")
if resolved.empty:
    st.caption("No issue resolved in the last 7 days.")
else:
    st.dataframe(resolved, hide_index=True, key="overview.resolved",
                 column_order=["resolved_at", "severity", "type", "partner", "found", "first_seen", "reopened"],
                 column_config={
                     "resolved_at": st.column_config.DatetimeColumn("Resolved (UTC)", format="YYYY-MM-DD HH:mm"),
                     "severity": "Severity", "type": "Type", "partner": "Partner",
                     "found": st.column_config.TextColumn("What we found", width=300),
                     "first_seen": st.column_config.DatetimeColumn("First seen (UTC)", format="YYYY-MM-DD HH:mm"),
                     "reopened": st.column_config.NumberColumn("Reopened", help="Times it came back"),
                 })

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
st.dataframe(shown, hide_index=True, key="overview.table", column_order=list(COLUMNS), column_config=COLUMNS)
alerts_panel.render(principal)

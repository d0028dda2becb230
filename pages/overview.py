"""Overview (customer success): tiles that partition the fleet, the issues worklist (by severity then age, each
linked to the page and partner that fixes it, snoozable), what resolved lately, and every partner's sync health in
one sortable, filterable table (ui.issue_worklist, ui.partner_table). All numbers, orders and words come from
core.console.overview."""

import streamlit as st

from core.console import overview as overview_screen
from ui import alerts as alerts_panel
from ui import auth, components, issue_worklist, partner_table, resources

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

listed = issue_worklist.worklist(open_issues)
if not listed.empty:
    issue_worklist.act_on_one(engine, principal, listed, now)
issue_worklist.recently_resolved(resolved)
partner_table.partner_table(table)
alerts_panel.render(principal)

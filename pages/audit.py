"""Audit log (customer success): who connected, edited, fetched, mapped or exported what, and when; filtered and
paged newest first by core.console.audit_log."""

import streamlit as st

from core.console import audit_log, partners
from ui import auth, components, resources

PAGE_SIZE = 50


def _first_page() -> None:
    st.session_state["audit.page"] = 1


principal = auth.require_page("audit")
engine = resources.get_engine()
st.title("Audit log")
options = audit_log.filter_options(engine, principal)
partner_names = dict(partners.partner_choices(engine, principal))
partner_at, action_at, actor_at, from_at, to_at = st.columns([2, 2, 2, 1.4, 1.4])  # dates need ~150 px
partner_id = partner_at.selectbox("Partner", [None, *partner_names], on_change=_first_page, key="audit.partner",
                                  format_func=lambda value: "All partners" if value is None else partner_names[value])
action = action_at.selectbox("Action", [None, *options.actions], on_change=_first_page, key="audit.action",
                             format_func=lambda value: audit_log.action_label(value) if value else "All actions")
actor = actor_at.selectbox("Actor", [None, *options.actors], on_change=_first_page, key="audit.actor",
                           format_func=lambda value: value or "Everyone")
first = from_at.date_input("From", value=None, on_change=_first_page, key="audit.from")
last = to_at.date_input("To", value=None, on_change=_first_page, key="audit.to")
page = max(1, int(st.session_state.get("audit.page", 1)))  # the pager below the filters, from the last run
with components.shown_errors():
    since, until = audit_log.day_bounds(first, last)
    events, total = audit_log.events(engine, principal, partner_id=partner_id, action=action, actor=actor,
                                     since=since, until=until, limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE)
pages = audit_log.page_count(total, PAGE_SIZE)
if page > pages:  # past the end (the matching events shrank): show the last page
    st.session_state["audit.page"] = pages
    st.rerun()
st.columns([1, 4])[0].number_input("Page", min_value=1, max_value=pages, step=1, key="audit.page")
st.caption(f"{total:,} matching events, newest first · page {page} of {pages}")
if events.empty:
    st.info("No events match these filters." if total == 0 else "No events on this page: pick an earlier page.")
else:
    st.dataframe(events, hide_index=True, key="audit.events", column_config={
        "at": st.column_config.DatetimeColumn("Time (UTC)", format="YYYY-MM-DD HH:mm:ss"), "actor": "Actor",
        "partner": "Partner", "action": "Action", "detail": st.column_config.TextColumn("Detail", width="large")})

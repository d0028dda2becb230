"""Audit log (customer success): who connected, edited, fetched, mapped or exported what, and when; filtered (the
partner filter follows the partner picked in the sidebar until another is picked here), paged newest first and
downloaded as CSV by core.console.audit_log."""

import streamlit as st

from core.console import audit_log, exports, partners
from ui import auth, components, resources

PAGE_SIZE = 50
FOLLOWED = "audit.followed"  # the sidebar pick the partner filter last followed


def _first_page() -> None:
    st.session_state["audit.page"] = 1


def _follow_sidebar(partner_names: dict[int, str]) -> None:
    """A new pick in the sidebar becomes the partner filter; a filter set here stays until the sidebar changes."""
    picked = components.selected_partner()
    if st.session_state.get(FOLLOWED, -1) != picked:
        st.session_state[FOLLOWED] = picked
        st.session_state["audit.partner"] = picked if picked in partner_names else None
        _first_page()


principal = auth.require_page("audit")
engine = resources.get_engine()
st.title("Audit log")
options = audit_log.filter_options(engine, principal)
partner_names = dict(partners.partner_choices(engine, principal))
_follow_sidebar(partner_names)
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
    filters = audit_log.Filters(partner_id, action, actor, since, until)
    events, total = audit_log.events(engine, principal, partner_id=partner_id, action=action, actor=actor,
                                     since=since, until=until, limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE)
    refusal = audit_log.download_refusal(engine, principal, rows=total, now=resources.now())
pages = audit_log.page_count(total, PAGE_SIZE)
if page > pages:  # past the end (the matching events shrank): show the last page
    st.session_state["audit.page"] = pages
    st.rerun()
pager_at, download_at = st.columns([1, 4], vertical_alignment="bottom")
pager_at.number_input("Page", min_value=1, max_value=pages, step=1, key="audit.page")
# core builds the file, checks the limits again and writes the "export" audit event only when it is clicked
download_at.download_button(
    "Download CSV", key="audit.download", mime="text/csv", on_click="ignore", file_name="audit-log.csv",
    disabled=not total or refusal is not None, help=exports.DOWNLOAD_LIMITS,
    data=lambda: audit_log.export_csv(engine, principal, filters, now=resources.now(), throttled=True)[0])
st.caption(f"{total:,} matching events, newest first · page {page:,} of {pages:,}")
if refusal is not None:
    st.caption(refusal)
if events.empty:
    st.info("No events match these filters." if total == 0 else "No events on this page: pick an earlier page.")
else:
    st.dataframe(events, hide_index=True, key="audit.events", column_config={
        "at": st.column_config.DatetimeColumn("Time (UTC)", format="YYYY-MM-DD HH:mm:ss"), "actor": "Actor",
        "partner": "Partner", "action": "Action", "detail": st.column_config.TextColumn("Detail", width="large")})

"""The Overview's issues: the worklist (filtered, ordered by core), the issue types' legend, acting on one issue
(its page and partner, snooze and its end) and what resolved lately. Rows, orders and words come from
core.console.overview; snoozes are core.actions.issues."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import streamlit as st
from sqlalchemy.engine import Engine

from core.access import Principal
from core.actions import issues as issue_actions
from core.console import overview as overview_screen
from core.console.formatting import escape_markdown
from ui import components


def worklist(open_issues: pd.DataFrame) -> pd.DataFrame:
    """The filters and the listed issues (overview_screen.listed_issues), returned for acting on one."""
    st.subheader(f"Issues ({len(open_issues):,} open)")
    severity_at, owner_at, type_at = st.columns(3)
    severities = severity_at.multiselect("Severity", overview_screen.SEVERITY_CHOICES, key="overview.severity")
    owners = owner_at.multiselect("Owner", overview_screen.OWNER_CHOICES, key="overview.owner")
    types = type_at.multiselect("Type", overview_screen.TYPE_CHOICES, key="overview.type")
    matching = overview_screen.filter_issues(open_issues, severities=severities, owners=owners, types=types)
    shown_issues = overview_screen.listed_issues(matching)
    if open_issues.empty:
        st.success("No open issues: every partner is syncing with nothing to follow up.")
    else:
        st.caption(overview_screen.worklist_caption(len(shown_issues), len(matching), len(open_issues)))
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
    return shown_issues


def act_on_one(engine: Engine, principal: Principal, listed: pd.DataFrame, now: datetime) -> None:
    """The picked issue (of those listed)'s page and partner, and its snooze (or the end of it)."""
    st.subheader("Act on an issue")
    choices = overview_screen.issue_choices(listed)
    picked = st.selectbox("Issue", list(choices), format_func=choices.__getitem__, key="overview.issue")
    issue = overview_screen.picked_issue(listed, picked)
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


def recently_resolved(resolved: pd.DataFrame) -> None:
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

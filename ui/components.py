"""Widgets shared by several pages: the partner picker, the freshness line and a sync run shown live."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import streamlit as st

from core.access import Principal
from core.console import partners
from core.console import syncs as history
from core.errors import ConsoleError
from core.store.tables import Role
from core.sync.engine import ProgressFn, RunResult
from ui import resources

PARTNER_KEY = "partner_id"


def partner_picker(principal: Principal) -> int | None:
    """cs picks any partner (kept across pages); a partner user always gets its own; pm has none."""
    if principal.role == Role.PARTNER:
        return principal.partner_id
    if principal.role != Role.CS:
        return None
    choices = partners.partner_choices(resources.get_engine(), principal)
    if not choices:
        st.sidebar.info("No partners yet: connect one on the Connection page.")
        return None
    ids = [partner_id for partner_id, _ in choices]
    names = dict(choices)
    current = st.session_state.get(PARTNER_KEY)
    index = ids.index(current) if current in ids else 0
    chosen = st.sidebar.selectbox("Partner", ids, index=index, format_func=names.__getitem__, key="sidebar.partner")
    st.session_state[PARTNER_KEY] = chosen
    return int(chosen)


def selected_partner() -> int | None:
    value = st.session_state.get(PARTNER_KEY)
    return int(value) if value is not None else None


def require_partner(principal: Principal) -> int:
    """The partner the page shows; stops the page with a hint when there is none."""
    partner_id = principal.partner_id if principal.role == Role.PARTNER else selected_partner()
    if partner_id is None:
        st.info("Pick a partner in the sidebar, or connect one on the Connection page.")
        st.stop()
    assert partner_id is not None
    return partner_id


def freshness(principal: Principal, partner_id: int) -> None:
    settings = resources.get_settings()
    line = partners.freshness_line(resources.get_engine(), principal, partner_id, now=settings.now(),
                                schedule_interval=timedelta(seconds=settings.schedule_interval_s))
    st.caption(line)


def run_with_status(label: str, start: Callable[[ProgressFn], RunResult]) -> None:
    """Run a sync inside st.status (its label follows the sync's progress), then say how it ended."""
    with st.status(f"{label}: starting…", expanded=True) as status:
        try:
            level, message = history.describe_result(start(lambda text: status.update(label=f"{label}: {text}")))
        except ConsoleError as exc:
            level, message = "error", exc.message
        status.update(label=label, state="error" if level == "error" else "complete", expanded=False)
    {"success": st.success, "warning": st.warning, "error": st.error}[level](message)

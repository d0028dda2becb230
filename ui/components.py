"""Widgets shared by several pages: the partner picker, the freshness line, a sync run shown live, and the one way a
page shows a refusal from core and stops."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import streamlit as st

from core.access import Principal
from core.console import partners
from core.errors import ConsoleError
from core.store.tables import Role
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


@contextmanager
def shown_errors() -> Iterator[None]:
    """Run the block; a ConsoleError raised in it is shown as st.error (its message is safe to show) and stops the
    page, so nothing after the block draws from a read model that failed."""
    try:
        yield
    except ConsoleError as exc:
        st.error(exc.message)
        st.stop()


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

"""Widgets shared by several pages: the partner picker, the freshness line, a bounded text input, the one way a
page shows a refusal from core and stops, and the one way a button runs a core action."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from types import ModuleType
from typing import Any

import streamlit as st
from streamlit.delta_generator import DeltaGenerator

from core.access import Principal
from core.console import exports, partners
from core.console.formatting import escape_markdown
from core.errors import ConsoleError
from core.limits import max_chars
from core.store.tables import Role
from ui import resources

PARTNER_KEY = "partner_id"
PARTNER_PARAM = "partner"  # ?partner=ID in the URL: a link to a page shows that partner
_LINK_SEEN = "partner.link_seen"
_PICKER_KEY = "sidebar.partner"


def _linked_partner(ids: list[int]) -> int | None:
    """The partner a link asks for, once per link (a partner picked since wins until the URL changes again); a link to
    a partner this account cannot see is said so and ignored (core checks access on every read as well)."""
    raw = st.query_params.get(PARTNER_PARAM)
    if raw is None or raw == st.session_state.get(_LINK_SEEN):
        return None
    st.session_state[_LINK_SEEN] = raw
    asked = int(raw) if raw.isdecimal() and len(raw) < 19 else None
    if asked not in ids:
        st.sidebar.warning("The link named a partner you cannot open here; pick one below.")
        return None
    return asked


def partner_picker(principal: Principal) -> int | None:
    """cs picks any partner (kept across pages and in the URL, so a link shows the same partner); a partner user
    always gets its own; pm has none."""
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
    linked = _linked_partner(ids)
    if linked is not None:
        st.session_state[_PICKER_KEY] = linked
    elif st.session_state.get(_PICKER_KEY) not in ids:
        current = st.session_state.get(PARTNER_KEY)
        st.session_state[_PICKER_KEY] = current if current in ids else ids[0]
    chosen = int(st.sidebar.selectbox("Partner", ids, format_func=names.__getitem__, key=_PICKER_KEY))
    show_partner(chosen)
    st.session_state[_LINK_SEEN] = str(chosen)
    return chosen


@contextmanager
def shown_errors() -> Iterator[None]:
    """Run the block; a ConsoleError raised in it is shown as st.error (its message is safe to show) and stops the
    page, so nothing after the block draws from a read model that failed."""
    try:
        yield
    except ConsoleError as exc:
        st.error(escape_markdown(exc.message))
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
    st.caption(escape_markdown(line))


def text_input(where: DeltaGenerator | ModuleType, label: str, *, field: str, **kwargs: Any) -> str:
    """st.text_input bounded by core.limits: Streamlit cuts anything longer than the field's limit (a paste too, and
    a value sent by a crafted request), and a note under a full field says so; core refuses longer values from
    everywhere else."""
    limit = max_chars(field)
    value = str(where.text_input(label, max_chars=limit, **kwargs) or "")
    if len(value) >= limit:
        where.caption(f"{label} takes at most {limit:,} characters; anything longer is cut off.")
    return value


def act(done: str, action: Callable[[], object]) -> None:
    """A button callback: run the core action; its outcome (`done`, or the refusal) shows at the top of the rerun
    that follows."""
    try:
        action()
    except ConsoleError as exc:
        st.error(escape_markdown(exc.message))
    else:
        st.success(escape_markdown(done))


def show_partner(partner_id: int) -> None:
    """Show `partner_id` from the next run on, as if picked in the sidebar (the URL names it too): for a page that
    just created the partner, then reruns."""
    st.session_state[PARTNER_KEY] = partner_id
    st.query_params[PARTNER_PARAM] = str(partner_id)


def csv_download(key: str, file_name: str, *, rows: int, refusal: str | None, data: Callable[[], bytes]) -> None:
    """A Download CSV button for a core export. Core makes the file, checks the limits again and writes the "export"
    audit event only when it is clicked (not on every rerun), on Streamlit's download thread. Streamlit 1.67 takes the
    whole file as bytes, so a download is bounded by core's row limit, not streamed. A refusal at click time only
    shows Streamlit's "Failed to generate file", so the button is disabled beforehand, with `refusal` (core's reason)
    under it, when a download would be refused now."""
    st.download_button("Download CSV", key=key, mime="text/csv", on_click="ignore", file_name=file_name,
                       disabled=not rows or refusal is not None, help=exports.DOWNLOAD_LIMITS, data=data)
    if refusal is not None:
        st.caption(refusal)  # core's own words

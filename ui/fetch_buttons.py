"""The Syncs page's two manual fetches: a button per fetch with its live cooldown; a press queues the fetch
(core.actions.fetches) and a once-a-second fragment shows every queued or running sync of the partner from the
database, so progress survives page changes, reloads and other tabs. Customer success can cancel."""

from __future__ import annotations

import streamlit as st
from sqlalchemy.engine import Engine

from core.access import Principal
from core.actions import fetches
from core.console import syncs as syncs_screen
from core.console.formatting import escape_markdown
from core.errors import ConsoleError
from ui import auth, resources

REQUEST_KEY = "syncs.request"
NO_WORKER = ("No sync worker is running, so queued syncs will not start. Start one with `python -m core worker` "
             "(`make run` starts one beside the console).")


@st.fragment(run_every="1s")
def _ticking(engine: Engine, principal: Principal, partner_id: int) -> None:
    """One timer for the buttons' countdowns and the live syncs (every open tab ticks); a tab whose session ended
    meanwhile (signed out in another tab, idle, too old) is sent to the sign-in page at its next tick."""
    auth.end_if_signed_out()
    _buttons(engine, principal, partner_id)
    _live(engine, principal, partner_id)


def _buttons(engine: Engine, principal: Principal, partner_id: int) -> None:
    """Display only: a click hands the request to the page body, which queues the fetch."""
    states = syncs_screen.manual_fetch_states(engine, principal, partner_id, now=resources.now())
    for column, state in zip(st.columns(len(states)), states, strict=True):
        with column:
            if st.button(state.label, key=f"syncs.{state.kind}", type="primary", disabled=state.locked):
                st.session_state[REQUEST_KEY] = state.kind
                st.rerun(scope="app")
            st.caption(escape_markdown(state.availability))
            st.caption(escape_markdown(state.last_run))


def _live(engine: Engine, principal: Principal, partner_id: int) -> None:
    """The partner's queued and running syncs as they are now; a cancel button each for customer success."""
    syncs = syncs_screen.live_syncs(engine, principal, partner_id, now=resources.now())
    if syncs and not syncs_screen.workers_alive(engine):
        st.warning(NO_WORKER)
    for sync in syncs:
        text_at, cancel_at = st.columns([5, 1])
        text_at.info(f"**{escape_markdown(sync.label)}** · {escape_markdown(sync.text)}")
        if sync.cancellable and cancel_at.button("Cancel", key=f"syncs.cancel.{sync.job_id}"):
            try:
                st.toast(escape_markdown(fetches.cancel_sync(engine, principal, partner_id=partner_id,
                                                             job_id=sync.job_id, now=resources.now())))
            except ConsoleError as exc:  # e.g. it finished meanwhile: say so, the next tick redraws the list
                st.error(escape_markdown(exc.message))
            else:
                st.rerun(scope="app")


def manual_fetches(engine: Engine, principal: Principal, partner_id: int) -> None:
    """Queue the fetch a button asked for (said under the buttons), then draw the buttons and the live syncs; or
    say why this partner has no manual fetches."""
    allowed, reason = fetches.manual_fetch_allowed(engine, partner_id)
    if not allowed:
        st.info(escape_markdown(reason))
        return
    buttons, outcome = st.container(), st.container()
    if requested := st.session_state.pop(REQUEST_KEY, None):
        label = syncs_screen.KIND_LABELS[requested]
        try:
            fetches.request_manual_fetch(engine, principal, partner_id=partner_id, kind=requested,
                                         now=resources.now(), settings=resources.get_settings())
            outcome.success(f"{label} queued: its progress shows below, on any page or tab, until it finishes.")
        except ConsoleError as exc:
            outcome.error(escape_markdown(exc.message))
    with buttons:  # drawn after the request, so the countdown it just started shows at once
        _ticking(engine, principal, partner_id)

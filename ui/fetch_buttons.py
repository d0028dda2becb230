"""The Syncs page's two manual fetches: a button per fetch with its live cooldown, and the requested fetch run
through core.actions.fetches with its progress shown live."""

from __future__ import annotations

import streamlit as st
from sqlalchemy.engine import Engine

from core.access import Principal
from core.actions import fetches as actions
from core.console import syncs as syncs_screen
from ui import components, resources

REQUEST_KEY = "syncs.request"


@st.fragment(run_every="1s")
def _buttons(engine: Engine, principal: Principal, partner_id: int) -> None:
    """Display only (every open tab ticks): a click hands the request to the page body, which starts the fetch."""
    states = syncs_screen.manual_fetch_states(engine, principal, partner_id, now=resources.now())
    for column, state in zip(st.columns(len(states)), states, strict=True):
        with column:
            if st.button(state.label, key=f"syncs.{state.kind}", type="primary", disabled=state.locked):
                st.session_state[REQUEST_KEY] = state.kind
                st.rerun(scope="app")
            st.caption(state.availability)
            st.caption(state.last_run)


def manual_fetches(engine: Engine, principal: Principal, partner_id: int) -> None:
    """Run the fetch a button asked for (shown under the buttons), then draw the buttons; or say why this partner
    has no manual fetches."""
    allowed, reason = actions.manual_fetch_allowed(engine, partner_id)
    if not allowed:
        st.info(reason)
        return
    buttons, outcome = st.container(), st.container()
    if requested := st.session_state.pop(REQUEST_KEY, None):
        with outcome:
            components.run_with_status(syncs_screen.KIND_LABELS[requested], lambda progress: actions.start_manual_fetch(
                engine, principal, partner_id=partner_id, kind=requested, now=resources.now(),
                settings=resources.get_settings(), client_factory=resources.get_client_factory(), progress=progress))
    with buttons:  # drawn after the fetch, so the countdown it just started shows at once
        _buttons(engine, principal, partner_id)

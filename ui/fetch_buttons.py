"""The Syncs page's two manual fetches: a button per fetch with its live cooldown; a press queues the fetch
(core.actions.fetches) and a once-a-second fragment shows every queued or running sync of the partner from the
database, so progress survives page changes, reloads and other tabs. Customer success can cancel."""

from __future__ import annotations

from datetime import timedelta

import streamlit as st
from sqlalchemy.engine import Engine
from streamlit.delta_generator import DeltaGenerator

from core.access import Principal
from core.actions import fetches
from core.console import syncs as syncs_screen
from core.console.formatting import escape_markdown
from core.errors import ConsoleError, CooldownActive, SyncAlreadyQueued
from ui import auth, resources, sync_runs

REQUEST_KEY = "syncs.request"
LIVE_KEY = "syncs.live"  # the live syncs (job, run) the last tick drew: a change at a tick redraws the whole page
SAID_KEY = "syncs.said"  # what the last press queued, said until that fetch has finished


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
    seen, before = [(sync.job_id, sync.run_id) for sync in syncs], st.session_state.get(LIVE_KEY)
    st.session_state[LIVE_KEY] = seen
    if before is not None and before != seen:  # a sync started or ended: the charts, the table, the freshness line
        st.rerun(scope="app")                  # and the run detail are redrawn with it, so they all agree
    if syncs and not syncs_screen.workers_alive(engine):
        st.warning(syncs_screen.no_worker_text(principal.role))
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


def _press(engine: Engine, principal: Principal, partner_id: int, kind: str, outcome: DeltaGenerator) -> None:
    """Queue the fetch pressed and follow it; a refusal says what will happen instead (the fetch already running,
    when the next may start)."""
    settings = resources.get_settings()
    try:
        job_id = fetches.request_manual_fetch(engine, principal, partner_id=partner_id, kind=kind,
                                              now=resources.now(), settings=settings)
    except (CooldownActive, SyncAlreadyQueued) as refused:
        outcome.warning(escape_markdown(syncs_screen.press_refused(
            engine, principal, partner_id, kind=kind, error=refused, now=resources.now(),
            schedule_interval=timedelta(seconds=settings.schedule_interval_s))))
    except ConsoleError as exc:
        outcome.error(escape_markdown(exc.message))
    else:
        sync_runs.follow(job_id)
        st.session_state[SAID_KEY] = (f"{syncs_screen.KIND_LABELS[kind]} queued: its progress shows below, on any "
                                      "page or tab, until it finishes; its run shows in the table and the run "
                                      "detail once it starts.")


def manual_fetches(engine: Engine, principal: Principal, partner_id: int) -> None:
    """Queue the fetch a button asked for (said under the buttons), then draw the buttons and the live syncs; or
    say why this partner has no manual fetches."""
    allowed, reason = fetches.manual_fetch_allowed(engine, partner_id)
    if not allowed:
        st.info(escape_markdown(reason))
        return
    buttons, outcome = st.container(), st.container()
    st.session_state.pop(LIVE_KEY, None)  # the whole page is drawn now: only a tick's change asks for a redraw
    if requested := st.session_state.pop(REQUEST_KEY, None):
        _press(engine, principal, partner_id, requested, outcome)
    if said := st.session_state.get(SAID_KEY):
        if sync_runs.followed_job_live(engine, principal, partner_id):
            outcome.success(said)
        else:
            del st.session_state[SAID_KEY]
    with buttons:  # drawn after the request, so the countdown it just started shows at once
        _ticking(engine, principal, partner_id)
